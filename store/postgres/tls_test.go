package postgres_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
)

// A TLS set-up that fails is a configuration error, not an unreachable
// server: Open says ErrTLS and not ErrStoreUnavailable, so that symbot run
// fails at once instead of waiting forever.
func TestOpenTLSFailureIsNotUnavailable(t *testing.T) {
	pg := pgtest.Shared(t) // its server has ssl off
	tests := []struct{ name, url string }{
		{"sslmode=require, server without TLS", strings.Replace(pg.URL("postgres"), "sslmode=disable", "sslmode=require", 1)},
		{"sslmode=verify-full, server without TLS", strings.Replace(pg.URL("postgres"), "sslmode=disable", "sslmode=verify-full", 1)},
		{"sslmode=verify-full, untrusted certificate", "postgres://symbot:pw@" + untrustedTLSServer(t) + "/symbot?sslmode=verify-full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := postgres.Open(t.Context(), tt.url, postgres.Config{})
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, postgres.ErrTLS) {
				t.Errorf("error does not wrap ErrTLS: %v", err)
			}
			if errors.Is(err, symbot.ErrStoreUnavailable) {
				t.Errorf("error wraps ErrStoreUnavailable (symbot run would wait forever): %v", err)
			}
		})
	}
}

// untrustedTLSServer serves PostgreSQL's TLS request with a self-signed
// certificate no system trusts, and returns its host:port.
func untrustedTLSServer(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req := make([]byte, 8) // SSLRequest: length 8, code 80877103
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				if _, err := c.Write([]byte{'S'}); err != nil {
					return
				}
				tc := tls.Server(c, conf)
				_ = tc.Handshake() // fails: the client does not trust the certificate
				tc.Close()
			}()
		}
	}()
	return ln.Addr().String()
}
