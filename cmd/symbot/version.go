package main

// This file holds what `symbot version` and the symbot_build_info metric
// say about the build: the version, commit, build date and Go version, from
// -ldflags where the release build sets them and from the Go build info
// otherwise.

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"sync"
)

// Set at build time by deploy/build.sh:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=<sha> -X main.date=<RFC 3339>"
//
// Empty means "not set": the Go build info fills in what it knows.
var (
	version string
	commit  string
	date    string
)

// BuildInfo says which symbot build this is.
type BuildInfo struct {
	Version   string // v1.2.3, a pseudo-version, or "dev"
	Commit    string // the full commit hash, or "unknown"
	Date      string // when the commit was made (RFC 3339), or "unknown"
	GoVersion string // the toolchain that built it, e.g. go1.26.8
	Modified  bool   // built from a work tree with uncommitted changes
}

// pseudoVersion matches a Go module pseudo-version, e.g.
// v0.0.0-20261202031500-0123456789ab, as `go install ...@<commit>` records.
var pseudoVersion = regexp.MustCompile(`-(?:0\.)?(\d{14})-([0-9a-f]{12})(?:\+incompatible)?$`)

// newBuildInfo combines the -ldflags values with Go's build info (bi may be
// nil). The -ldflags values win; then the VCS stamps `go build` records in a
// git checkout; then what a module version (`go install ...@v1.2.3`) tells.
func newBuildInfo(bi *debug.BuildInfo, version, commit, date string) BuildInfo {
	b := BuildInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			b.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.Date == "" {
					b.Date = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
		if v := bi.Main.Version; b.Version == "" && v != "" && v != "(devel)" {
			b.Version = v
			if m := pseudoVersion.FindStringSubmatch(v); m != nil {
				if b.Commit == "" {
					b.Commit = m[2]
				}
				if b.Date == "" {
					t := m[1]
					b.Date = t[0:4] + "-" + t[4:6] + "-" + t[6:8] + "T" + t[8:10] + ":" + t[10:12] + ":" + t[12:14] + "Z"
				}
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

// currentBuild is this binary's BuildInfo.
var currentBuild = sync.OnceValue(func() BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return newBuildInfo(bi, version, commit, date)
})

// buildInfoLabels are the labels of symbot_build_info, in the order of
// BuildInfo.labelValues.
var buildInfoLabels = []string{"version", "commit", "build_date", "go_version"}

// labelValues are the values of buildInfoLabels.
func (b BuildInfo) labelValues() []string {
	c := b.Commit
	if b.Modified {
		c += "-modified"
	}
	return []string{b.Version, c, b.Date, b.GoVersion}
}

func (b BuildInfo) String() string {
	c := b.Commit
	if b.Modified {
		c += " (modified work tree)"
	}
	return fmt.Sprintf("symbot %s\n  commit:     %s\n  build date: %s\n  go:         %s %s/%s\n",
		b.Version, c, b.Date, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}

func versionCmd(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", stderr)
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	fmt.Fprint(stdout, currentBuild())
	return exitOK
}
