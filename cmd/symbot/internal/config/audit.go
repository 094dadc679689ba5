package config

// The audit section: the key that seals the chain, how often checkpoints
// are exported, and the sinks the trail is shipped to.

import (
	"fmt"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// Sink types.
const (
	SinkFile    = "file"
	SinkWebhook = "webhook"
	SinkS3      = "s3"
)

// Audit configures the audit trail.
type Audit struct {
	// KeyFile is a file (mode 0600) holding the key that seals the chain,
	// as `symbot audit keygen` writes it. KeySecret is a Secrets Manager
	// secret (name or ARN) holding it instead, read through the aws chain.
	// Neither: the chain stays unkeyed SHA-256.
	KeyFile         string
	KeySecret       string
	CheckpointEvery time.Duration // default 5m
	AlertAfter      int           // failed deliveries before an alert; default 10
	Sinks           []AuditSink
}

// AuditSink is one destination of the trail.
type AuditSink struct {
	Name string
	Type string // file, webhook or s3

	Path     string // file: where (relative to the config file)
	MaxBytes int64  // file: rotate past this size; default 100 MB
	Keep     int    // file: rotated files kept; default 5

	URL       string // webhook: https endpoint
	SecretEnv string // webhook: environment variable holding the signing secret

	Bucket    string // s3
	Prefix    string // s3: key prefix
	PathStyle bool   // s3: path-style addressing

	Secret []byte // webhook: the secret read from SecretEnv (never from the file)
}

func (d *decoder) audit(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, p string) {
		d.mapping(n, p, []field{
			{"key_file", d.str(&c.Audit.KeyFile)},
			{"key_secret", d.str(&c.Audit.KeySecret)},
			{"checkpoint_every", d.duration(&c.Audit.CheckpointEvery, nil)},
			{"alert_after", d.positive(&c.Audit.AlertAfter)},
			{"sinks", func(n *yaml.Node, p string) {
				d.list(n, p, func(item *yaml.Node, ip string) {
					var s AuditSink
					var mb int
					d.mapping(item, ip, []field{
						{"name", d.str(&s.Name)},
						{"type", d.str(&s.Type)},
						{"path", d.str(&s.Path)},
						{"max_mb", d.positive(&mb)},
						{"keep", d.positive(&s.Keep)},
						{"url", d.str(&s.URL)},
						{"secret_env", d.str(&s.SecretEnv)},
						{"bucket", d.str(&s.Bucket)},
						{"prefix", d.str(&s.Prefix)},
						{"path_style", d.boolean(&s.PathStyle, nil)},
					})
					s.MaxBytes = int64(mb) << 20
					c.Audit.Sinks = append(c.Audit.Sinks, s)
				})
			}},
		})
	}
}

func (c *Config) auditDefaults(dir string, getenv func(string) string) {
	if c.Audit.CheckpointEvery == 0 {
		c.Audit.CheckpointEvery = 5 * time.Minute
	}
	if c.Audit.KeyFile != "" && !filepath.IsAbs(c.Audit.KeyFile) {
		c.Audit.KeyFile = filepath.Join(dir, c.Audit.KeyFile)
	}
	for i := range c.Audit.Sinks {
		s := &c.Audit.Sinks[i]
		if s.Type == SinkFile {
			if s.Path != "" && !filepath.IsAbs(s.Path) {
				s.Path = filepath.Join(dir, s.Path)
			}
			if s.MaxBytes == 0 {
				s.MaxBytes = 100 << 20
			}
			if s.Keep == 0 {
				s.Keep = 5
			}
		}
		if s.SecretEnv != "" && getenv != nil {
			s.Secret = []byte(getenv(s.SecretEnv))
		}
	}
}

func (c *Config) validateAudit(at func(path, format string, args ...any)) {
	if c.Audit.KeyFile != "" && c.Audit.KeySecret != "" {
		at("audit.key_secret", "give audit.key_file or audit.key_secret, not both")
	}
	if c.Audit.CheckpointEvery < 0 || (c.Audit.CheckpointEvery > 0 && c.Audit.CheckpointEvery < time.Second) {
		at("audit.checkpoint_every", "must be at least 1s")
	}
	names := map[string]bool{}
	for i, s := range c.Audit.Sinks {
		p := fmt.Sprintf("audit.sinks[%d]", i)
		switch {
		case s.Name == "":
			at(p+".name", "missing: a short name for the sink (its delivery cursor and metrics use it)")
		case names[s.Name]:
			at(p+".name", "%q is used by another sink: names must be unique", s.Name)
		}
		names[s.Name] = true
		switch s.Type {
		case SinkFile:
			if s.Path == "" {
				at(p+".path", "missing: the JSON-lines file the trail is appended to")
			} else if err := dirExists(s.Path); err != nil {
				at(p+".path", "%v", err)
			}
		case SinkWebhook:
			if s.URL == "" {
				at(p+".url", "missing: the https endpoint the trail is posted to")
			} else if err := checkURL(s.URL); err != nil {
				at(p+".url", "%v", err)
			}
			switch {
			case s.SecretEnv == "":
				at(p+".secret_env", "missing: the environment variable holding the signing secret (never put the secret in the file)")
			case len(s.Secret) < 16:
				at(p+".secret_env", "environment variable %s is unset or shorter than 16 bytes: set it to a long random secret", s.SecretEnv)
			}
		case SinkS3:
			if s.Bucket == "" {
				at(p+".bucket", "missing: the S3 bucket the trail is written to")
			}
		case "":
			at(p+".type", "missing: file, webhook or s3")
		default:
			at(p+".type", "%q is not a sink type: use file, webhook or s3", s.Type)
		}
	}
}
