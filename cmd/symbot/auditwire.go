package main

// The audit trail's wiring: the key that seals the chain, the sinks the
// trail is shipped to, and their metrics.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/cmd/symbot/internal/auditsink"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// readKeyFile reads an audit key file, refusing one that others can read.
func readKeyFile(path string) (*symbot.AuditKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit key file: %w (make one with `symbot audit keygen %s`)", err, path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit key file %s has mode %v: it must be readable by symbot's user only: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit key file: %w", err)
	}
	k, err := symbot.ParseAuditKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit key file %s: %w", path, err)
	}
	return k, nil
}

// loadAuditKey returns the key the config names, or nil when it names none.
func loadAuditKey(ctx context.Context, cfg *config.Config, src *awsauth.Source) (*symbot.AuditKey, error) {
	switch {
	case cfg.Audit.KeyFile != "":
		return readKeyFile(cfg.Audit.KeyFile)
	case cfg.Audit.KeySecret != "":
		return src.AuditKey(ctx, cfg.Audit.KeySecret)
	}
	return nil, nil
}

// auditSinks builds the configured sinks; close the closers when done.
func auditSinks(cfg *config.Config, src *awsauth.Source) (map[string]symbot.AuditSink, []io.Closer, error) {
	sinks := map[string]symbot.AuditSink{}
	var closers []io.Closer
	fail := func(err error) (map[string]symbot.AuditSink, []io.Closer, error) {
		for _, c := range closers {
			c.Close()
		}
		return nil, nil, err
	}
	for _, s := range cfg.Audit.Sinks {
		switch s.Type {
		case config.SinkFile:
			f, err := auditsink.OpenFile(s.Path, s.MaxBytes, s.Keep)
			if err != nil {
				return fail(fmt.Errorf("audit sink %s: %w", s.Name, err))
			}
			closers = append(closers, f)
			sinks[s.Name] = f
		case config.SinkWebhook:
			w, err := auditsink.NewWebhook(s.URL, s.Secret, nil)
			if err != nil {
				return fail(fmt.Errorf("audit sink %s: %w", s.Name, err))
			}
			sinks[s.Name] = w
		case config.SinkS3:
			s3, err := src.NewS3Sink(awsauth.S3SinkConfig{Bucket: s.Bucket, Prefix: s.Prefix, PathStyle: s.PathStyle})
			if err != nil {
				return fail(fmt.Errorf("audit sink %s: %w", s.Name, err))
			}
			sinks[s.Name] = s3
		default:
			return fail(fmt.Errorf("audit sink %s: unknown type %q", s.Name, s.Type))
		}
	}
	return sinks, closers, nil
}

// startAudit seals the chain with the configured key (recording a switch
// as an entry) and returns the loop that ships the trail to the sinks and
// exports checkpoints to them and to the log until ctx ends.
func (d *daemon) startAudit(ctx context.Context) (func() error, error) {
	k, err := loadAuditKey(ctx, d.cfg, d.aws)
	if err != nil {
		return nil, err
	}
	d.engine.AuditKey = k
	if err := d.engine.EnsureAuditKey(ctx); err != nil {
		return nil, err
	}
	if k != nil {
		d.log.Info("audit chain keyed", "key", k)
	}
	sinks, closers, err := auditSinks(d.cfg, d.aws)
	if err != nil {
		return nil, err
	}
	sh, err := symbot.NewAuditShipper(d.store, sinks)
	if err != nil {
		return nil, err
	}
	sh.Logger = d.log.With("component", "audit")
	sh.CheckpointEvery = d.cfg.Audit.CheckpointEvery
	sh.AlertAfter = d.cfg.Audit.AlertAfter
	sh.Alert = d.engine.QueueAlert
	if err := d.metrics.Registry.Register((*auditCollector)(sh)); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return nil, fmt.Errorf("audit metrics: %w", err)
	}
	d.shipper = sh
	return func() error {
		defer func() {
			for _, c := range closers {
				c.Close()
			}
		}()
		return sh.Run(ctx)
	}, nil
}

var (
	descSinkDelivered = prometheus.NewDesc("symbot_audit_sink_delivered_total", "Audit entries delivered to the sink since start.", []string{"sink"}, nil)
	descSinkPending   = prometheus.NewDesc("symbot_audit_sink_pending", "Audit entries the sink does not have yet.", []string{"sink"}, nil)
	descSinkFailing   = prometheus.NewDesc("symbot_audit_sink_failing", "Consecutive failed deliveries to the sink (0: healthy).", []string{"sink"}, nil)
)

// auditCollector exports the shipper's per-sink state at scrape time.
type auditCollector symbot.AuditShipper

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSinkDelivered
	ch <- descSinkPending
	ch <- descSinkFailing
}

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range (*symbot.AuditShipper)(c).Stats() {
		ch <- prometheus.MustNewConstMetric(descSinkDelivered, prometheus.CounterValue, float64(s.Delivered), s.Name)
		ch <- prometheus.MustNewConstMetric(descSinkPending, prometheus.GaugeValue, float64(s.Pending), s.Name)
		ch <- prometheus.MustNewConstMetric(descSinkFailing, prometheus.GaugeValue, float64(s.Failing), s.Name)
	}
}
