package awsauth_test

import (
	"testing"

	"github.com/symbot/symbot/awsauth"
)

// BenchmarkColdPath measures a new Source's first token: load the default
// config, assume the hop and the connector role, read and parse the secret.
func BenchmarkColdPath(b *testing.B) {
	for _, bc := range []struct {
		name string
		hops []string
	}{
		{"role", nil},
		{"hop+role", []string{hopARN}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newWorld(b)
			w.srv.AddRole(awsauthRoleTrustingBase())
			cfg := w.cfg
			cfg.HopRoles = bc.hops
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				src, err := awsauth.New(b.Context(), edited(cfg, func(c *awsauth.Config) { c.LoadOptions = append(c.LoadOptions, fastRetries()) }))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := src.Token(b.Context()); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 0 {
					w.srv.ResetCalls()
				}
			}
		})
	}
}

// BenchmarkWarmToken measures Token from the cache.
func BenchmarkWarmToken(b *testing.B) {
	w := newWorld(b)
	src := mustNew(b, w.cfg)
	if _, err := src.Token(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := src.Token(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := src.Token(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
