package symbot

// Shipping the audit trail to sinks (a file, a webhook, S3). The audit
// chain is the outbox: every entry is written in the transaction of the
// change it records, and each sink has a durable cursor in the store (the
// Seq of the last entry it has). A goroutine per sink reads the entries
// past its cursor in pages, delivers them, and moves the cursor: at least
// once, in order, with stable ids (AuditRecordID). A sink that is down
// holds back only its own cursor; requests never wait for a sink.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// AuditSink receives the audit trail in order. Deliver may be called again
// with records it already got (after an error, or a restart before the
// cursor moved): receivers drop duplicates by record id.
type AuditSink interface {
	Deliver(ctx context.Context, b AuditBatch) error
}

// AuditBatch is what one Deliver call carries: entries in Seq order, then
// optionally a checkpoint of the chain's head at the last of them.
type AuditBatch struct {
	Sink       string // the sink's configured name
	Entries    []AuditEntry
	Checkpoint *AuditCheckpoint
}

// AuditSinkStats is one sink's delivery state, for metrics.
type AuditSinkStats struct {
	Name      string
	Delivered int64  // entries delivered since start
	Pending   uint64 // entries in the chain the sink does not have yet
	Failing   int    // consecutive failed deliveries (0: healthy)
	Alerted   bool   // an alert was raised for the current failure run
	LastError string
}

// AuditShipper delivers the audit trail to sinks; see the top of this file.
type AuditShipper struct {
	store Store
	sinks []*sinkRunner

	// Optional settings; set before Run.
	Now             func() time.Time
	Logger          *slog.Logger
	BatchSize       int           // entries per delivery; default 100
	Poll            time.Duration // how often the head is read for new entries; default 1s
	CheckpointEvery time.Duration // how often a checkpoint is exported; default 5m
	RetryBase       time.Duration // first retry delay; default 1s
	RetryMax        time.Duration // cap of retry delays; default 5m
	DeliverTimeout  time.Duration // one delivery attempt; default 30s
	AlertAfter      int           // consecutive failures before an alert; default 10
	ShutdownGrace   time.Duration // final flush and checkpoint at shutdown; default 5s
	// Alert raises an operator alert (cmd/symbot wires Engine.QueueAlert);
	// nil only logs.
	Alert func(ctx context.Context, a Alert) error
}

type sinkRunner struct {
	name string
	sink AuditSink
	kick chan struct{}

	cpDue     atomic.Bool // a checkpoint should follow the next delivery
	delivered atomic.Int64
	pending   atomic.Uint64
	failing   atomic.Int64
	alerted   atomic.Bool
	mu        sync.Mutex
	lastErr   string
	lastCP    uint64 // Seq of the last checkpoint delivered
}

// NewAuditShipper returns a shipper for the named sinks.
func NewAuditShipper(st Store, sinks map[string]AuditSink) (*AuditShipper, error) {
	s := &AuditShipper{store: st}
	for _, name := range slices.Sorted(maps.Keys(sinks)) {
		if name == "" || sinks[name] == nil {
			return nil, fmt.Errorf("audit sinks: sink %q: a sink needs a name and an implementation", name)
		}
		s.sinks = append(s.sinks, &sinkRunner{name: name, sink: sinks[name], kick: make(chan struct{}, 1)})
	}
	return s, nil
}

func (s *AuditShipper) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *AuditShipper) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return discard
}

// Kick makes every sink look for new entries now rather than at its next
// poll.
func (s *AuditShipper) Kick() {
	for _, r := range s.sinks {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Stats returns every sink's delivery state, by name.
func (s *AuditShipper) Stats() []AuditSinkStats {
	out := make([]AuditSinkStats, 0, len(s.sinks))
	for _, r := range s.sinks {
		r.mu.Lock()
		le := r.lastErr
		r.mu.Unlock()
		out = append(out, AuditSinkStats{Name: r.name, Delivered: r.delivered.Load(), Pending: r.pending.Load(),
			Failing: int(r.failing.Load()), Alerted: r.alerted.Load(), LastError: le})
	}
	return out
}

// Checkpoint reads the chain's head as a checkpoint (Seq 0: empty chain).
func (s *AuditShipper) Checkpoint(ctx context.Context) (AuditCheckpoint, error) {
	var c AuditCheckpoint
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		c, err = headCheckpoint(tx, s.now())
		return err
	})
	if err != nil {
		return AuditCheckpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	return c, nil
}

func headCheckpoint(tx Tx, now time.Time) (AuditCheckpoint, error) {
	seq, hash, err := tx.AuditHead()
	if err != nil || seq == 0 {
		return AuditCheckpoint{}, err
	}
	c := AuditCheckpoint{Seq: seq, Hash: hash, At: now}
	last, err := tx.Audit(seq-1, 1)
	if err != nil {
		return AuditCheckpoint{}, err
	}
	if len(last) == 1 {
		c.Key = last[0].Key
	}
	return c, nil
}

// logCheckpoint exports a checkpoint to the log.
func (s *AuditShipper) logCheckpoint(ctx context.Context, why string) {
	c, err := s.Checkpoint(ctx)
	if err != nil {
		s.log().Error("audit checkpoint", "error", err)
		return
	}
	if c.Seq == 0 {
		return
	}
	s.log().Info(LogAuditCheckpoint, "audit_seq", c.Seq, "audit_head", c.Hash, "audit_key", c.Key, "reason", why)
}

// Run ships until ctx ends, then, within ShutdownGrace, delivers what each
// sink can still take and a final checkpoint, and logs that checkpoint.
func (s *AuditShipper) Run(ctx context.Context) error {
	grace := orDefault(s.ShutdownGrace, 5*time.Second)
	final, cancelFinal := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFinal()
	var wg sync.WaitGroup
	for _, r := range s.sinks {
		r.cpDue.Store(true) // anchor what is there at start
		wg.Go(func() { s.runSink(ctx, final, r) })
	}
	s.logCheckpoint(ctx, "start")
	tick := time.NewTicker(orDefault(s.CheckpointEvery, 5*time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t := time.AfterFunc(grace, cancelFinal)
			wg.Wait()
			t.Stop()
			s.logCheckpoint(context.WithoutCancel(ctx), "shutdown")
			return nil
		case <-tick.C:
			s.logCheckpoint(ctx, "interval")
			for _, r := range s.sinks {
				r.cpDue.Store(true)
			}
			s.Kick()
		}
	}
}

// runSink is one sink's loop. After ctx ends it flushes with final (which
// ends after the shutdown grace) and returns.
func (s *AuditShipper) runSink(ctx, final context.Context, r *sinkRunner) {
	poll := orDefault(s.Poll, time.Second)
	for {
		if ctx.Err() != nil {
			r.cpDue.Store(true)
			for final.Err() == nil {
				more, err := s.deliverOnce(final, r)
				if err != nil || !more {
					break
				}
			}
			return
		}
		more, err := s.deliverOnce(ctx, r)
		wait := poll
		switch {
		case err != nil && ctx.Err() == nil:
			wait = s.failed(ctx, r, err)
		case err == nil && more:
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-r.kick:
			if r.failing.Load() > 0 {
				// a kick does not cut a back-off short
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// deliverOnce delivers the next page past r's cursor (with a checkpoint
// when one is due and the page reaches the head) and moves the cursor. It
// reports whether it delivered anything.
func (s *AuditShipper) deliverOnce(ctx context.Context, r *sinkRunner) (bool, error) {
	batch := orDefault(s.BatchSize, 100)
	b := AuditBatch{Sink: r.name}
	var head uint64
	err := s.store.View(ctx, func(tx Tx) error {
		cursor, err := tx.SinkCursor(r.name)
		if err != nil {
			return err
		}
		if head, _, err = tx.AuditHead(); err != nil {
			return err
		}
		if cursor > head {
			return fmt.Errorf("sink %s has entries up to %d but the chain ends at %d: the audit trail was truncated; run `symbot audit verify --against` with this sink's export", r.name, cursor, head)
		}
		r.pending.Store(head - cursor)
		if b.Entries, err = tx.Audit(cursor, batch); err != nil {
			return err
		}
		if len(b.Entries) > 0 && b.Entries[0].Seq != cursor+1 {
			return fmt.Errorf("sink %s: the entry after %d is %d: the audit trail has a gap; run `symbot audit verify`", r.name, cursor, b.Entries[0].Seq)
		}
		end := cursor + uint64(len(b.Entries))
		if r.cpDue.Load() && end == head && head > 0 && r.lastCP != head {
			c, err := headCheckpoint(tx, s.now())
			if err != nil {
				return err
			}
			b.Checkpoint = &c
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read audit for sink %s: %w", r.name, err)
	}
	if len(b.Entries) == 0 && b.Checkpoint == nil {
		if r.cpDue.Load() && r.lastCP == head {
			r.cpDue.Store(false)
		}
		return false, nil
	}
	dctx, cancel := context.WithTimeout(ctx, orDefault(s.DeliverTimeout, 30*time.Second))
	err = r.sink.Deliver(dctx, b)
	cancel()
	if err != nil {
		return false, fmt.Errorf("deliver audit to sink %s: %w", r.name, err)
	}
	if n := len(b.Entries); n > 0 {
		last := b.Entries[n-1].Seq
		if err := s.store.Update(context.WithoutCancel(ctx), func(tx Tx) error { return tx.SetSinkCursor(r.name, last) }); err != nil {
			return false, fmt.Errorf("record sink %s cursor: %w", r.name, err)
		}
		r.delivered.Add(int64(n))
		r.pending.Store(head - min(head, last))
	}
	if b.Checkpoint != nil {
		r.lastCP = b.Checkpoint.Seq
		r.cpDue.Store(false)
	}
	if r.failing.Swap(0) > 0 {
		s.log().Info("audit sink delivers again", "sink", r.name, "alerted", r.alerted.Load())
	}
	r.alerted.Store(false)
	r.mu.Lock()
	r.lastErr = ""
	r.mu.Unlock()
	return true, nil
}

// failed records a failed delivery, alerts once per failure run after
// AlertAfter failures, and returns the back-off before the next attempt.
func (s *AuditShipper) failed(ctx context.Context, r *sinkRunner, err error) time.Duration {
	n := r.failing.Add(1)
	r.mu.Lock()
	r.lastErr = errText(err)
	r.mu.Unlock()
	s.log().Warn("audit sink delivery failed", "sink", r.name, "attempts", n, "pending", r.pending.Load(), "error", err)
	if int(n) >= orDefault(s.AlertAfter, 10) && !r.alerted.Swap(true) {
		text := fmt.Sprintf("Audit sink %s has failed %d deliveries in a row; %d entries wait for it. symbot keeps retrying. Last error: %s", r.name, n, r.pending.Load(), errText(err))
		s.log().Error("audit sink stuck", "sink", r.name, "attempts", n, "pending", r.pending.Load(), "error", err)
		if s.Alert != nil {
			if aerr := s.Alert(ctx, Alert{Event: EventSinkStuck, Text: text}); aerr != nil && !errors.Is(aerr, context.Canceled) {
				s.log().Error("raise audit sink alert", "sink", r.name, "error", aerr)
			}
		}
	}
	d := orDefault(s.RetryBase, time.Second)
	for i := int64(1); i < n && d < orDefault(s.RetryMax, 5*time.Minute); i++ {
		d *= 2
	}
	return min(d, orDefault(s.RetryMax, 5*time.Minute))
}
