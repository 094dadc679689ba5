package main

import (
	"context"
	"log/slog"

	"github.com/symbot/symbot"
)

// redactHandler passes every log record through symbot.Redact: the
// message, and every string, error and Stringer attribute (in groups too),
// so that a token echoed in some library's error never reaches a log line.
type redactHandler struct{ inner slog.Handler }

func newRedactHandler(h slog.Handler) slog.Handler { return redactHandler{h} }

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, symbot.Redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	rs := make([]slog.Attr, len(as))
	for i, a := range as {
		rs[i] = redactAttr(a)
	}
	return redactHandler{h.inner.WithAttrs(rs)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.inner.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, symbot.Redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		rs := make([]any, len(g))
		for i, x := range g {
			rs[i] = redactAttr(x)
		}
		return slog.Group(a.Key, rs...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, symbot.Redact(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, symbot.Redact(x.String()))
		case []string:
			ys := make([]string, len(x))
			for i, s := range x {
				ys[i] = symbot.Redact(s)
			}
			return slog.Any(a.Key, ys)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
