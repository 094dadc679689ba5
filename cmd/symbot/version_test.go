package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestNewBuildInfo(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/symbot/symbot", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name                  string
		bi                    *debug.BuildInfo
		version, commit, date string // -ldflags
		want                  BuildInfo
	}{
		{
			name: "no build info, no ldflags",
			want: BuildInfo{Version: "dev", Commit: "unknown", Date: "unknown", GoVersion: runtime.Version()},
		},
		{
			name: "go build in a git checkout",
			bi:   vcs,
			want: BuildInfo{Version: "dev", Commit: "0123456789abcdef0123456789abcdef01234567", Date: "2026-12-01T10:00:00Z", GoVersion: "go1.26.8", Modified: true},
		},
		{
			name: "release build: ldflags win over the VCS stamps",
			bi:   vcs, version: "v1.4.0", commit: "fedcba9876543210fedcba9876543210fedcba98", date: "2026-11-30T09:00:00Z",
			want: BuildInfo{Version: "v1.4.0", Commit: "fedcba9876543210fedcba9876543210fedcba98", Date: "2026-11-30T09:00:00Z", GoVersion: "go1.26.8", Modified: true},
		},
		{
			name: "go install at a tag",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}},
			want: BuildInfo{Version: "v1.4.0", Commit: "unknown", Date: "unknown", GoVersion: "go1.26.8"},
		},
		{
			name: "go install at a commit: the pseudo-version names commit and time",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.1-0.20261202031500-0123456789ab"}},
			want: BuildInfo{Version: "v1.4.1-0.20261202031500-0123456789ab", Commit: "0123456789ab", Date: "2026-12-02T03:15:00Z", GoVersion: "go1.26.8"},
		},
		{
			name: "go install at a commit with no tag before it",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202031500-0123456789ab"}},
			want: BuildInfo{Version: "v0.0.0-20261202031500-0123456789ab", Commit: "0123456789ab", Date: "2026-12-02T03:15:00Z", GoVersion: "go1.26.8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newBuildInfo(tt.bi, tt.version, tt.commit, tt.date)
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBuildInfoLabels(t *testing.T) {
	b := BuildInfo{Version: "v1.4.0", Commit: "abc", Date: "2026-11-30T09:00:00Z", GoVersion: "go1.26.8", Modified: true}
	got := b.labelValues()
	want := []string{"v1.4.0", "abc-modified", "2026-11-30T09:00:00Z", "go1.26.8"}
	if len(got) != len(buildInfoLabels) || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %q for labels %q, want %q", got, buildInfoLabels, want)
	}
}

func TestVersionCommand(t *testing.T) {
	code, out, errOut := cli(t, "version")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b := currentBuild()
	for _, want := range []string{"symbot " + b.Version + "\n", "commit:", "build date: " + b.Date, "go:         " + b.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := cli(t, "version", "extra"); code != exitUsage || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d, %q", code, errOut)
	}
}
