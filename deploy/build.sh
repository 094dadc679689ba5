#!/bin/sh
# Reproducible, static build of symbot: what the container image, the
# systemd install and a release all use.
#
#   deploy/build.sh [OUTPUT]            (default: bin/symbot)
#
# VERSION, COMMIT and DATE come from the environment, else from git (the
# commit's own time, so the same commit gives the same binary), else
# dev/unknown. GOOS and GOARCH cross-compile as usual.
set -eu
cd "$(dirname "$0")/.."
out=${1:-bin/symbot}
if [ -z "${VERSION:-}" ]; then
	VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
fi
if [ -z "${COMMIT:-}" ]; then
	COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
fi
if [ -z "${DATE:-}" ]; then
	DATE=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo unknown)
fi
# CGO_ENABLED=0: no libc, runs on scratch; -trimpath: no build paths in the
# binary; -buildvcs=false and -buildid=: nothing that differs between two
# checkouts of the same commit.
CGO_ENABLED=0 exec go build -trimpath -buildvcs=false \
	-ldflags "-s -w -buildid= -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
	-o "$out" ./cmd/symbot
