#!/usr/bin/env bash
# Writes, in every module's go.sum, the h1: lines of the sibling modules it
# requires (github.com/unjuno/flm/core v1.0.0 h1:…), as `go mod tidy` computes
# them outside the workspace. Run it at release time, after
# `go run ./tools/release sync` and before the release commit
# (docs/RELEASING.md).
#
# A module's hash covers its go.sum, so the lines are written tier by tier in
# dependency order (`release tiers`: core and tools/enginefake, then proxy and
# the engines, then cli and tools). For each tier the released modules are
# zipped from the working tree into a temporary file proxy (`release modproxy
# -tree`: untracked files count, so run it in a clean checkout), and each module
# of the tier is tidied with GOWORK=off against that proxy. Every tier starts
# with no FLM module in its temporary GOMODCACHE: a cached zip of an earlier
# tier, made before its go.sum changed, would put a stale hash in the
# dependents' go.sum. (The tiers share the temporary cache's third-party
# modules and only github.com/unjuno/flm/* is removed between tiers: the same
# result as a fresh cache per tier, 2-3 times faster.)
#
# Third-party modules come from the real module cache (read as a file proxy)
# and then proxy.golang.org; github.com/unjuno/flm/* never enter the real
# module cache. GONOSUMDB, not GOPRIVATE: GOPRIVATE also means GONOPROXY, which
# would skip the file proxy.
#
#   bash tools/scripts/release-sums.sh            # all tiers
#   RELEASE_BIN=/path/to/release bash tools/scripts/release-sums.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
prefix=github.com/unjuno/flm
# REAL_GOMODCACHE: the cache to read third-party modules from, when GOMODCACHE
# is already a temporary one (boundary.sh).
real_cache=${REAL_GOMODCACHE:-$(GOFLAGS='' go env GOMODCACHE)}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/release-sums.XXXXXX")
cleanup() { chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

release=${RELEASE_BIN:-}
if [ -z "$release" ]; then
  # Workspace build: go.work resolves the siblings, nothing is downloaded.
  GOPROXY=off go build -o "$tmp/release" ./tools/release
  release=$tmp/release
fi

mapfile -t tiers < <("$release" -root "$root" tiers)
start=$SECONDS
for i in "${!tiers[@]}"; do
  proxy=$tmp/proxy$i cache=$tmp/cache
  if [ -d "$cache" ]; then
    chmod -R u+w "$cache/github.com/unjuno" "$cache/cache/download/github.com/unjuno" 2>/dev/null || true
    rm -rf "$cache/github.com/unjuno" "$cache/cache/download/github.com/unjuno"
  fi
  "$release" -root "$root" modproxy -tree -out "$proxy" >/dev/null
  # The modules of a tier do not depend on each other: tidy them in parallel
  # (the go command locks its module cache), each with its own log.
  pids=() names=()
  for m in ${tiers[$i]}; do
    (
      s=$SECONDS
      cd "$m"
      # The old sibling hashes go first: tidy refuses a go.sum that disagrees
      # with a download (any change to a sibling since the last release).
      if [ -f go.sum ]; then
        grep -v "^$prefix/" go.sum >go.sum.new || true
        mv go.sum.new go.sum
      fi
      GOWORK=off GOFLAGS=-mod=mod GOMODCACHE="$cache" GONOSUMDB=$prefix GOTOOLCHAIN=local \
        GOPROXY="file://$proxy,file://$real_cache/cache/download,https://proxy.golang.org" \
        go mod tidy
      [ -s go.sum ] || rm -f go.sum
      n=$(grep -c "^$prefix/" go.sum 2>/dev/null || true)
      echo "release-sums: tier $i $m: ${n:-0} sibling go.sum lines ($((SECONDS - s)) s)"
    ) >"$tmp/log.${m//\//_}" 2>&1 &
    pids+=($!) names+=("$m")
  done
  failed=
  for k in "${!pids[@]}"; do
    m=${names[$k]}
    if wait "${pids[$k]}"; then
      tail -n 1 "$tmp/log.${m//\//_}"
    else
      cat "$tmp/log.${m//\//_}" >&2
      echo "release-sums: go mod tidy failed in $m" >&2
      failed=1
    fi
  done
  [ -z "$failed" ] || exit 1
  rm -rf "$proxy"
done
echo "release-sums: done in $((SECONDS - start)) s"
