package postgres

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// ErrTLS marks an error of Open that is a failed TLS set-up with the
// database: the server does not accept TLS though the connection string's
// sslmode requires it, or its certificate failed verification (unknown
// authority, wrong host name, expired). Waiting does not fix it; the
// connection string (sslmode, sslrootcert) or the server's TLS set-up
// must change.
var ErrTLS = errors.New("TLS with the database failed")

// tlsError wraps a driver error that is a TLS failure, and ErrTLS.
type tlsError struct{ err error }

func (e *tlsError) Error() string   { return e.err.Error() }
func (e *tlsError) Unwrap() []error { return []error{e.err, ErrTLS} }

// classifyOpen is classify for Open: a failed TLS set-up is a
// configuration error (ErrTLS), not an unreachable server, so that
// `symbot run` reports it at once instead of waiting for the database.
func classifyOpen(err error) error {
	if tlsFailure(err) {
		return &tlsError{err}
	}
	return classify(err)
}

// tlsFailure reports whether err is a failed TLS set-up: the server
// answered the TLS request with "no" (pgconn says "server refused TLS
// connection" with no error type of its own), its certificate failed
// verification, it spoke something other than TLS, or it ended the
// handshake with an alert.
func tlsFailure(err error) bool {
	if err == nil {
		return false
	}
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		host      x509.HostnameError
		invalid   x509.CertificateInvalidError
		header    tls.RecordHeaderError
		alert     tls.AlertError
	)
	return errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &host) ||
		errors.As(err, &invalid) || errors.As(err, &header) || errors.As(err, &alert) ||
		strings.Contains(err.Error(), "server refused TLS connection")
}
