package awsauth_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/awsauth/awstest"
	"github.com/symbot/symbot/store/memstore"
)

const auditBucket = "acme-audit"

func s3World(t *testing.T) (*world, *awsauth.S3Sink) {
	t.Helper()
	w := newWorld(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", w.srv.URL())
	w.srv.AddBucket(auditBucket)
	w.srv.AllowBucket(roleARN, auditBucket)
	src := mustNew(t, w.cfg)
	sink, err := src.NewS3Sink(awsauth.S3SinkConfig{Bucket: auditBucket, Prefix: "symbot/audit/", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return w, sink
}

func auditStore(t *testing.T, n int) *memstore.Store {
	t.Helper()
	st := memstore.New()
	for i := range n {
		if err := st.Update(t.Context(), func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: time.Unix(int64(i), 0), RequestID: "SYM-1", Actor: "UBOB", Action: "approve"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// ship runs a shipper over st into sink until cond holds.
func ship(t *testing.T, st symbot.Store, sink symbot.AuditSink, cond func(symbot.AuditSinkStats) bool, tune func(*symbot.AuditShipper)) symbot.AuditSinkStats {
	t.Helper()
	sh, err := symbot.NewAuditShipper(st, map[string]symbot.AuditSink{"s3": sink})
	if err != nil {
		t.Fatal(err)
	}
	sh.BatchSize = 50
	sh.Poll = 10 * time.Millisecond
	sh.RetryBase = 10 * time.Millisecond
	sh.RetryMax = 50 * time.Millisecond
	if tune != nil {
		tune(sh)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := sh.Stats()[0]
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in 30s; stats %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func objectsText(srv *awstest.Server) string {
	var b strings.Builder
	for _, o := range srv.Objects(auditBucket) {
		b.Write(o.Body)
	}
	return b.String()
}

func TestS3SinkDeliversBatchesAsObjects(t *testing.T) {
	w, sink := s3World(t)
	st := auditStore(t, 120)
	ship(t, st, sink, func(s symbot.AuditSinkStats) bool { return s.Delivered == 120 }, nil)
	objs := w.srv.Objects(auditBucket)
	if len(objs) != 3 {
		t.Fatalf("objects = %d, want 3 (batches of 50)", len(objs))
	}
	if objs[0].Key != "symbot/audit/00000000000000000001-00000000000000000050.jsonl" || objs[0].ContentType != "application/x-ndjson" {
		t.Errorf("first object %s (%s)", objs[0].Key, objs[0].ContentType)
	}
	anchors, err := symbot.ParseAuditAnchors(strings.NewReader(objectsText(w.srv)))
	if err != nil {
		t.Fatal(err)
	}
	if len(anchors) != 120 || anchors[119].Seq != 120 {
		t.Fatalf("anchors from S3 = %d, want 120 entries in order", len(anchors))
	}
	// The export catches a chain truncated behind it.
	var es []symbot.AuditEntry
	if err := st.View(t.Context(), func(tx symbot.Tx) (err error) {
		es, err = tx.Audit(0, 100)
		return err
	}); err != nil || len(es) != 100 {
		t.Fatalf("read 100 entries back: %d, %v", len(es), err)
	}
	chain := symbot.AuditChain{Checkpoints: anchors}
	for i := range es {
		chain.Next(&es[i])
	}
	if err := chain.End(100, es[99].Hash); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated chain against the S3 export: %v", err)
	}
	for _, c := range w.srv.Calls() {
		if c.Action == awstest.OpPutObject && c.Caller == "" {
			t.Errorf("PutObject without a caller: %+v", c)
		}
	}
}

func TestS3SinkRetriesAReceiverThatFailsForAWhile(t *testing.T) {
	w, sink := s3World(t)
	w.srv.Inject(awstest.OpPutObject, awstest.Fault{ErrorRate: 1, Count: 12})
	st := auditStore(t, 60)
	s := ship(t, st, sink, func(s symbot.AuditSinkStats) bool { return s.Delivered == 60 }, func(sh *symbot.AuditShipper) { sh.AlertAfter = 2 })
	if s.Failing != 0 || s.Pending != 0 {
		t.Errorf("stats after recovery %+v", s)
	}
	total, failed := w.srv.CountCalls(awstest.OpPutObject)
	if failed != 12 || total < 14 {
		t.Errorf("PutObject calls %d, failed %d; want the 12 injected failures, then success", total, failed)
	}
	anchors, err := symbot.ParseAuditAnchors(strings.NewReader(objectsText(w.srv)))
	if err != nil || len(anchors) != 60 {
		t.Fatalf("anchors %d, %v", len(anchors), err)
	}
}

func TestS3SinkSlowReceiverTimesOutAndCatchesUp(t *testing.T) {
	w, sink := s3World(t)
	w.srv.Inject(awstest.OpPutObject, awstest.Fault{Latency: 2 * time.Second, Count: 2})
	st := auditStore(t, 10)
	var sawFailing bool
	ship(t, st, sink, func(s symbot.AuditSinkStats) bool {
		sawFailing = sawFailing || s.Failing > 0
		return s.Delivered == 10
	}, func(sh *symbot.AuditShipper) { sh.DeliverTimeout = 300 * time.Millisecond })
	if !sawFailing {
		t.Errorf("a receiver slower than DeliverTimeout did not count as failing")
	}
	if got := len(w.srv.Objects(auditBucket)); got == 0 {
		t.Errorf("no objects after the slow receiver recovered")
	}
}

func TestS3SinkErrorsSayWhatToFix(t *testing.T) {
	w, sink := s3World(t)
	b := symbot.AuditBatch{Entries: []symbot.AuditEntry{{Seq: 1, Hash: "h"}}}
	w.srv.Inject(awstest.OpPutObject, awstest.Fault{Refuse: true})
	err := sink.Deliver(t.Context(), b)
	if err == nil || !strings.Contains(err.Error(), "allow s3:PutObject") {
		t.Errorf("refused: %v", err)
	}
	w.srv.ClearFaults()
	src := mustNew(t, w.cfg)
	other, _ := src.NewS3Sink(awsauth.S3SinkConfig{Bucket: "nope", PathStyle: true})
	err = other.Deliver(t.Context(), b)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchBucket" || !strings.Contains(err.Error(), "create the bucket") {
		t.Errorf("missing bucket: %v", err)
	}
	if _, err := src.NewS3Sink(awsauth.S3SinkConfig{}); err == nil {
		t.Errorf("NewS3Sink without a bucket: nil error")
	}
}

// TestS3SimulatorWire drives the simulator with the real s3 client: the
// checksum the SDK sends is checked, conditional writes and unknown
// credentials are refused as S3 refuses them.
func TestS3SimulatorWire(t *testing.T) {
	w, _ := s3World(t)
	src := mustNew(t, w.cfg)
	c := s3.NewFromConfig(aws.Config{Region: region, Credentials: src.Credentials(), BaseEndpoint: aws.String(w.srv.URL())}, func(o *s3.Options) { o.UsePathStyle = true })
	put := func(key string, body string, fn ...func(*s3.PutObjectInput)) error {
		in := &s3.PutObjectInput{Bucket: aws.String(auditBucket), Key: aws.String(key), Body: bytes.NewReader([]byte(body))}
		for _, f := range fn {
			f(in)
		}
		_, err := c.PutObject(t.Context(), in)
		return err
	}
	if err := put("a/b c.txt", "hello"); err != nil {
		t.Fatal(err)
	}
	if objs := w.srv.Objects(auditBucket); len(objs) != 1 || objs[0].Key != "a/b c.txt" || string(objs[0].Body) != "hello" || objs[0].ETag != `"5d41402abc4b2a76b9719d911017c592"` {
		t.Errorf("stored %+v", objs)
	}
	err := put("a/b c.txt", "again", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
		t.Errorf("If-None-Match on an existing key: %v", err)
	}
	err = put("x", "body", func(in *s3.PutObjectInput) { in.ChecksumCRC32 = aws.String("AAAAAA==") })
	if !errors.As(err, &ae) || ae.ErrorCode() != "BadDigest" {
		t.Errorf("wrong CRC32: %v", err)
	}
	stranger := s3.NewFromConfig(aws.Config{Region: region, Credentials: aws.AnonymousCredentials{}, BaseEndpoint: aws.String(w.srv.URL())}, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := stranger.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(auditBucket), Key: aws.String("k"), Body: strings.NewReader("x")}); err == nil {
		t.Errorf("anonymous PutObject succeeded")
	}
}

func TestAuditKeyFromSecretsManager(t *testing.T) {
	w := newWorld(t)
	key, _ := symbot.GenerateAuditKey()
	w.srv.PutSecret("symbot/audit-key", key)
	w.srv.AllowSecret(roleARN, "symbot/audit-key")
	w.srv.PutSecret("symbot/not-a-key", "hello")
	w.srv.AllowSecret(roleARN, "symbot/not-a-key")
	src := mustNew(t, w.cfg)
	k, err := src.AuditKey(t.Context(), "symbot/audit-key")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := symbot.ParseAuditKey([]byte(key))
	if k.ID() != want.ID() {
		t.Errorf("key id %s, want %s", k.ID(), want.ID())
	}
	if _, err := src.AuditKey(t.Context(), "symbot/not-a-key"); err == nil || strings.Contains(err.Error(), "hello") {
		t.Errorf("a secret that is no key: %v (must fail without quoting it)", err)
	}
	if _, err := src.AuditKey(t.Context(), "symbot/okta"); err == nil || strings.Contains(err.Error(), oktaToken) {
		t.Errorf("the okta token secret as audit key: %v", err)
	}
	w.srv.AllowSecret(roleARN, "symbot/no-such-key")
	if _, err := src.AuditKey(t.Context(), "symbot/no-such-key"); !errors.Is(err, symbot.ErrSecretNotFound) || !strings.Contains(err.Error(), "audit.key_secret in symbot.yml") {
		t.Errorf("a missing audit key secret: %v, want ErrSecretNotFound naming audit.key_secret", err)
	}
}
