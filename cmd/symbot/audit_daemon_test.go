package main

import (
	"bytes"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/symbot/symbot"
)

// TestDaemonAuditTrail runs the daemon with a keyed chain and a file sink:
// the admin's operating-system user is in the trail, the sink's export
// anchors `audit verify --against`, and export and report answer.
func TestDaemonAuditTrail(t *testing.T) {
	w, cfgPath := mustWorld(t, "1h", "0")
	dir := filepath.Dir(cfgPath)
	keyPath := filepath.Join(dir, "audit.key")
	sinkPath := filepath.Join(dir, "audit.jsonl")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"audit", "keygen", keyPath}, nil, &out, &errOut); code != 0 {
		t.Fatalf("audit keygen: %d %s", code, errOut.String())
	}
	if st, err := os.Stat(keyPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if code := run(t.Context(), []string{"audit", "keygen", keyPath}, nil, io.Discard, &errOut); code == 0 || !strings.Contains(errOut.String(), "never overwrites") {
		t.Errorf("keygen over an existing key: exit %d %s", code, errOut.String())
	}
	yml, _ := os.ReadFile(cfgPath)
	yml = append(yml, []byte("audit:\n  key_file: audit.key\n  checkpoint_every: 1s\n  sinks:\n    - {name: local, type: file, path: audit.jsonl}\n")...)
	os.WriteFile(cfgPath, yml, 0o600)
	d := mustOpenDaemon(t, w, cfgPath, nil)
	stop := runDaemon(t, d)
	wait := waiter(t, w, nil)
	cli := configCLI(t, cfgPath)
	wait("symbot to connect", d.bot.Connected)
	mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h audit me")
	rs, _ := d.engine.ListByState(t.Context(), symbot.StatePending)
	if len(rs) != 1 {
		t.Fatalf("pending = %d", len(rs))
	}
	id := rs[0].ID
	if out, code := cli("revoke", id, "--reason", "not today"); code != 0 {
		t.Fatalf("revoke: %d %s", code, out)
	}
	u, _ := user.Current()
	wantActor := "admin:" + u.Username + "(uid=" + strconv.Itoa(os.Getuid()) + ","
	exported, code := cli("audit", "export", "--format", "jsonl")
	if code != 0 || !strings.Contains(exported, wantActor) || !strings.Contains(exported, `"action":"audit:key"`) {
		t.Fatalf("audit export: exit %d, want the operator %q and the key switch:\n%s", code, wantActor, exported)
	}
	if out, code := cli("audit", "export", "--format", "csv"); code != 0 || !strings.HasPrefix(out, "id,seq,at,") {
		t.Errorf("audit export csv: exit %d\n%s", code, out)
	}
	if out, code := cli("audit", "export", "--format", "xml"); code == 0 || !strings.Contains(out, "jsonl or csv") {
		t.Errorf("audit export xml: exit %d\n%s", code, out)
	}
	if out, code := cli("report", "--format", "md"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "audit me") {
		t.Errorf("report: exit %d\n%s", code, out)
	}
	wait("the sink to catch up", func() bool {
		s := d.shipper.Stats()
		return len(s) == 1 && s[0].Pending == 0 && s[0].Delivered > 0
	})
	if out, code := cli("audit", "verify", "--against", sinkPath); code != 0 || !strings.Contains(out, "matches") {
		t.Errorf("audit verify --against the sink: exit %d\n%s", code, out)
	}
	var m bytes.Buffer
	d.metrics.WriteText(&m)
	for _, want := range []string{`symbot_audit_sink_delivered_total{sink="local"}`, `symbot_audit_sink_pending{sink="local"}`, `symbot_audit_sink_failing{sink="local"} 0`} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	stop()
	sink, _ := os.ReadFile(sinkPath)
	if !strings.Contains(string(sink), `"type":"checkpoint"`) {
		t.Errorf("the sink holds no checkpoint after shutdown")
	}
	key, _ := os.ReadFile(keyPath)
	if strings.Contains(string(sink), strings.TrimSpace(string(key))) {
		t.Errorf("the key is in the sink")
	}
}

func TestReadKeyFileRefusesLooseModes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	key, _ := symbot.GenerateAuditKey()
	os.WriteFile(p, []byte(key), 0o644)
	os.Chmod(p, 0o644)
	if _, err := readKeyFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 key file: %v", err)
	}
	os.Chmod(p, 0o600)
	if _, err := readKeyFile(p); err != nil {
		t.Errorf("0600 key file: %v", err)
	}
}
