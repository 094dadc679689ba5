package okta_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/symbot/symbot/okta"
	"github.com/symbot/symbot/okta/oktatest"
)

type benchEnv struct {
	*env
	uid, gid string
	raw      *http.Client
	put      string
}

func newBenchEnv(b *testing.B) *benchEnv {
	e := MustEnv(b, func(c *okta.Config) { c.Logger = nil })
	e.sim.SetRateLimit(1<<30, time.Minute)
	u := e.sim.AddUser(oktatest.User{Login: "bench@corp.example"})
	g := e.sim.AddGroup(oktatest.Group{Name: "bench"})
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	be := &benchEnv{env: e, uid: u.ID, gid: g.ID, raw: &http.Client{Transport: t},
		put: e.sim.URL() + "/api/v1/groups/" + g.ID + "/users/" + u.ID}
	// Warm: client built, limiter knows the window, connections open.
	if err := e.dir.AddMember(b.Context(), u.ID, g.ID); err != nil {
		b.Fatal(err)
	}
	be.rawPut(b)
	return be
}

func (be *benchEnv) rawPut(b *testing.B) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPut, be.put, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "SSWS "+be.sim.Token())
	req.Header.Set("Accept", "application/json")
	resp, err := be.raw.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b.Fatalf("raw PUT: %d", resp.StatusCode)
	}
}

// BenchmarkAddMember measures one membership PUT through the adapter (warm
// client and limiter) and the same PUT with bare net/http.
func BenchmarkAddMember(b *testing.B) {
	b.Run("adapter", func(b *testing.B) {
		be := newBenchEnv(b)
		ctx := b.Context()
		b.ReportAllocs()
		for b.Loop() {
			if err := be.dir.AddMember(ctx, be.uid, be.gid); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		be := newBenchEnv(b)
		b.ReportAllocs()
		for b.Loop() {
			be.rawPut(b)
		}
	})
}

// BenchmarkAddMemberRatio alternates adapter and raw PUTs against the same
// simulator and reports adapter time / raw time.
func BenchmarkAddMemberRatio(b *testing.B) {
	be := newBenchEnv(b)
	ctx := b.Context()
	var adapter, raw time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := be.dir.AddMember(ctx, be.uid, be.gid); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		be.rawPut(b)
		adapter += t1.Sub(t0)
		raw += time.Since(t1)
	}
	b.ReportMetric(float64(adapter)/float64(raw), "adapter/raw")
	b.ReportMetric(float64(adapter.Nanoseconds())/float64(b.N), "adapter-ns/op")
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
}
