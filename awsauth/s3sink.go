// The S3 sink for the audit trail, with the chain's role credentials, and
// audit keys read from Secrets Manager.

package awsauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/symbot/symbot"
)

// S3SinkConfig says where the audit trail goes in S3.
type S3SinkConfig struct {
	Bucket string
	// Prefix starts every object key, e.g. "symbot/audit/". Objects are
	// <Prefix><first seq>-<last seq>.jsonl with 20-digit sequence numbers,
	// so listing them in key order lists the trail in order; a batch that
	// carries only a checkpoint is <Prefix><seq>-checkpoint.jsonl.
	Prefix string
	// PathStyle addresses the bucket in the path (/<bucket>/<key>) rather
	// than the host name; for S3-compatible stores and endpoints by address.
	PathStyle bool
}

// S3Sink writes the audit trail to S3, one object of JSON lines per batch
// (symbot.AppendAuditJSONL), with the chain's final credentials (the
// RoleARN session). A batch delivered again overwrites its object with the
// same records, so redelivery leaves no duplicates. It implements
// symbot.AuditSink.
type S3Sink struct {
	client *s3.Client
	cfg    S3SinkConfig
}

// NewS3Sink returns a sink that writes with src's credentials and region
// (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL point it elsewhere).
func (src *Source) NewS3Sink(cfg S3SinkConfig) (*S3Sink, error) {
	if cfg.Bucket == "" {
		return nil, &ConfigError{"bucket", "is missing: name the S3 bucket the audit trail goes to"}
	}
	c := s3.NewFromConfig(src.awsCfg, func(o *s3.Options) {
		o.Credentials = src.creds
		o.UsePathStyle = cfg.PathStyle
	})
	return &S3Sink{client: c, cfg: cfg}, nil
}

// ObjectKey is the key of the object that holds b.
func (s *S3Sink) ObjectKey(b symbot.AuditBatch) string {
	if n := len(b.Entries); n > 0 {
		return fmt.Sprintf("%s%020d-%020d.jsonl", s.cfg.Prefix, b.Entries[0].Seq, b.Entries[n-1].Seq)
	}
	if b.Checkpoint != nil {
		return fmt.Sprintf("%s%020d-checkpoint.jsonl", s.cfg.Prefix, b.Checkpoint.Seq)
	}
	return ""
}

// Deliver puts b as one object.
func (s *S3Sink) Deliver(ctx context.Context, b symbot.AuditBatch) error {
	key := s.ObjectKey(b)
	if key == "" {
		return nil
	}
	body := symbot.AppendAuditJSONL(nil, b)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.cfg.Bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(body),
		ContentType: aws.String("application/x-ndjson"),
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.cfg.Bucket, key, s3Hint(err))
	}
	return nil
}

// s3Hint adds what to do to the S3 errors an operator can fix.
func s3Hint(err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch code := ae.ErrorCode(); {
	case code == "NoSuchBucket":
		return fmt.Errorf("%w: create the bucket or fix audit.sinks[].bucket", err)
	case code == "AccessDenied" || strings.HasSuffix(code, "AccessDenied"):
		return fmt.Errorf("%w: allow s3:PutObject on the bucket's objects to the role symbot assumes (aws.role_arn)", err)
	}
	return err
}

// AuditKey reads the audit key from the Secrets Manager secret id (its
// SecretString, as `symbot audit keygen` prints it) with the chain's final
// credentials. Errors name the secret, never its value.
func (src *Source) AuditKey(ctx context.Context, id string) (*symbot.AuditKey, error) {
	out, err := src.getSecretValue(ctx, id, "audit.key_secret")
	if err != nil {
		return nil, fmt.Errorf("read audit key: %w", err)
	}
	if out.SecretString == nil {
		return nil, fmt.Errorf("read audit key: secret %q has no SecretString: store the key text `symbot audit keygen` prints", id)
	}
	k, err := symbot.ParseAuditKey([]byte(*out.SecretString))
	if err != nil {
		return nil, fmt.Errorf("read audit key from secret %q: %w", id, err)
	}
	return k, nil
}
