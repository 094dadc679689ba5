package admin

// A client that asks a handler in this process, for the offline admin
// commands: they serve the same protocol over a store opened read-only, so
// every command prints the same way whether it asks the daemon or not.

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// NewLocalClient returns a client whose requests h serves in this process,
// over in-memory connections; name (what h reads, like "--db
// /var/lib/symbot/symbot.db") stands for the socket in messages. Close the
// client to stop serving; it then closes each of after (the store h reads).
func NewLocalClient(name string, h http.Handler, after ...io.Closer) *Client {
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	c := &Client{
		Socket: name,
		hc: &http.Client{Transport: &http.Transport{
			DialContext:        func(ctx context.Context, _, _ string) (net.Conn, error) { return ln.dial(ctx) },
			DisableCompression: true,
		}},
	}
	c.close = func() {
		c.hc.CloseIdleConnections()
		srv.Close()
		<-served
		for _, a := range after {
			a.Close()
		}
	}
	return c
}

// Close releases the client's connections and, for a local client, stops
// its server. The client must not be used after.
func (c *Client) Close() error {
	if c.close != nil {
		c.close()
		return nil
	}
	c.hc.CloseIdleConnections()
	return nil
}

// pipeListener hands out the server ends of net.Pipe connections.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, net.ErrClosed
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "in-process" }
