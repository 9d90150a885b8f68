#!/usr/bin/env bash
# The one entry point that checks everything: installs the tools the checks
# need, then for every module of the workspace runs gofmt, go build, go vet,
# staticcheck and go test -race, and enforces core's coverage floor.
#
#   bash tools/test.sh            # everything (what CI runs)
#   bash tools/test.sh core cli   # only these modules
#
# It works on a fresh Debian machine with Go: every tool it needs is
# installed here, at a pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export PATH="$(go env GOPATH)/bin:$PATH"

STATICCHECK_VERSION=v0.8.2
CORE_COVERAGE_MIN=80

step() { printf '\n== %s\n' "$*"; }

if ! staticcheck -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
  step "install staticcheck $STATICCHECK_VERSION"
  go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

# The OpenAI Node client test (proxy/clients_test.go) needs Node.js and the
# pinned npm package.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  step "install Node.js (Debian packages)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nodejs npm
fi
if [ ! -d tools/clienttest/node_modules/openai ]; then
  step "npm ci (tools/clienttest)"
  (cd tools/clienttest && npm ci --no-audit --no-fund --loglevel=error)
fi

mods=("$@")
if [ ${#mods[@]} -eq 0 ]; then
  mapfile -t mods < <(sed -n 's#^\s*\./\([a-z-]*\)$#\1#p' go.work)
fi

step "gofmt"
unformatted=$(gofmt -l "${mods[@]}")
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

summary=()
passed=0
for m in "${mods[@]}"; do
  if [ -z "$(cd "$m" && go list ./... 2>/dev/null)" ]; then
    summary+=("$m: no Go packages yet"); continue
  fi
  step "$m: build, vet, staticcheck"
  (cd "$m" && go build ./... && go vet ./... && staticcheck ./...)
  step "$m: test -race"
  cover=()
  if [ "$m" = core ]; then cover=(-coverprofile="$PWD/coverage-core.txt" -coverpkg=./...); fi
  log=$(mktemp)
  status=0
  (cd "$m" && go test -race -count=1 -v "${cover[@]}" ./...) >"$log" 2>&1 || status=$?
  # The package lines, plus every failure in full.
  grep -E '^(ok|FAIL|\?|panic:|--- FAIL|\s+--- FAIL)|_test\.go:[0-9]+:' "$log" || true
  if [ $status -ne 0 ]; then
    echo "---- full output of the failing run:"; cat "$log"; rm -f "$log"; exit $status
  fi
  passed=$((passed + $(grep -cE '^\s*--- PASS' "$log" || true)))
  rm -f "$log"
  # Benchmarks run once so they keep compiling and working; no timing is
  # asserted (docs/PERFORMANCE.md has the figures and how to get them).
  if grep -rqs --include='*_test.go' '^func Benchmark' "$m"; then
    step "$m: benchmarks once (-benchtime=1x)"
    (cd "$m" && go test -run '^$' -bench . -benchtime 1x ./... >/dev/null)
  fi
  if [ "$m" = core ]; then
    total=$(go tool cover -func=coverage-core.txt | awk '/^total:/ {sub("%","",$3); print $3}')
    summary+=("core coverage: ${total}% (floor ${CORE_COVERAGE_MIN}%)")
    awk -v t="$total" -v min="$CORE_COVERAGE_MIN" 'BEGIN { exit !(t >= min) }' || {
      echo "core coverage ${total}% is below ${CORE_COVERAGE_MIN}%"; exit 1; }
  fi
done

step "summary"
printf '%s\n' "${summary[@]}" "all checks passed for: ${mods[*]}"
echo "go test: $passed passed, 0 failed"
