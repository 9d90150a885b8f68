#!/usr/bin/env bash
# The one entry point that checks everything: installs the tools the checks
# need, then for every module of the workspace runs gofmt, go build, go vet,
# staticcheck and go test -race (fuzz tests run their seed corpora as normal
# tests), runs the benchmarks once, and enforces core's coverage floor.
#
#   bash tools/test.sh            # everything (what CI runs)
#   bash tools/test.sh core cli   # only these modules
#
# It works on a fresh Debian machine with Go: every tool it needs is
# installed here, at a pinned version (see the install section).
#
# The counts are go test's own (`go test -json`, read by tools/testsummary):
# go test's per-package ok/FAIL lines, the full output of every failed test,
# every skipped test with its reason, and as the very last line
#
#   tests: N passed, N failed, N skipped
#
# Under CI=true a skipped test fails the run unless tools/skip-allowlist.txt
# names it with the reason: CI installs what tests need instead of skipping.
# A failing test, benchmark or coverage floor does not stop the run: every
# module is checked, then the run fails. gofmt, build, vet and staticcheck
# errors stop it at once.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export PATH="$(go env GOPATH)/bin:$PATH"

STATICCHECK_VERSION=v0.8.2
CORE_COVERAGE_MIN=80
SKIP_ALLOWLIST=tools/skip-allowlist.txt

step() { printf '\n== %s\n' "$*"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ============================================================================
# install: everything the checks and the tests need. To add a prerequisite,
# write an install_<name> function below (idempotent: it returns at once when
# the tool is there) and call it at the end of this section. Debian packages
# go through apt_install, which runs apt-get update once per run.
# ============================================================================

apt_updated=""
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  $sudo apt-get install -y -qq "$@"
}

install_staticcheck() {
  if ! staticcheck -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
    step "install staticcheck $STATICCHECK_VERSION"
    go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  fi
}

# core's API check (tools/scripts/api.sh): apidiff at its pinned version.
install_apidiff() {
  bash tools/scripts/api.sh install
}

# The release dry run (tools/scripts/boundary.sh, tools/scripts/package.sh):
# goreleaser v2.15.1, minisign, and the Debian packages its checks use.
install_packaging() {
  bash tools/scripts/package.sh install
}

# The OpenAI Node client test (proxy/clients_test.go) needs Node.js and the
# pinned npm package.
install_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    step "install Node.js (Debian packages)"
    apt_install nodejs npm
  fi
}

install_clienttest() {
  # Every pinned package (an older checkout's node_modules may lack one).
  local d
  for d in openai ollama @anthropic-ai/sdk; do
    if [ ! -f "tools/clienttest/node_modules/$d/package.json" ]; then
      step "npm ci (tools/clienttest)"
      (cd tools/clienttest && npm ci --no-audit --no-fund --loglevel=error)
      return
    fi
  done
}

# The web UI's browser tests (cli/internal/ui/browser_test.go) drive the
# Debian Chromium package with playwright-core; Playwright never downloads a
# browser. A Japanese font makes the ja screenshots readable.
install_chromium() {
  local need=()
  command -v chromium >/dev/null || need+=(chromium)
  fc-list :lang=ja 2>/dev/null | grep -q . || need+=(fonts-ipafont-gothic)
  if [ ${#need[@]} -gt 0 ]; then
    step "install Debian packages: ${need[*]}"
    apt_install "${need[@]}"
  fi
}

install_uitest() {
  if [ ! -f tools/uitest/node_modules/playwright-core/package.json ]; then
    step "npm ci (tools/uitest)"
    (cd tools/uitest && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# The reader of go test -json (tools/testsummary, standard library only).
install_testsummary() {
  (cd tools && go build -o "$work/testsummary" ./testsummary)
}

# The keychain tests (cli/internal/keychain, cli's DB-key tests) run a real
# gnome-keyring on a private D-Bus session they start themselves.
install_keyring() {
  bash tools/scripts/keyring.sh install
}

# ACME tests (proxy/acme, cli https-acme) run Let's Encrypt's test CA,
# Pebble, and its challenge test server (DNS, HTTP-01/TLS-ALPN-01 helper) on
# loopback.
PEBBLE_VERSION=v2.10.3
install_pebble() {
  local bin
  bin="$(go env GOPATH)/bin"
  if [ ! -x "$bin/pebble" ] || [ ! -x "$bin/pebble-challtestsrv" ] ||
    ! go version -m "$bin/pebble" 2>/dev/null | grep -q "pebble/v2.*$PEBBLE_VERSION"; then
    step "install pebble $PEBBLE_VERSION"
    go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION"
    go install "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION"
  fi
}

# Egress tests run a real SOCKS5 server (microsocks); packaged-ca tests put
# the local CA into the system trust store (update-ca-certificates) and NSS
# databases (certutil); service tests verify systemd units.
install_debian_tools() {
  local need=()
  command -v microsocks >/dev/null || need+=(microsocks)
  command -v update-ca-certificates >/dev/null || need+=(ca-certificates)
  command -v certutil >/dev/null || need+=(libnss3-tools)
  command -v curl >/dev/null || need+=(curl)
  # flm service's tests check the systemd units with systemd-analyze verify
  # (it works without systemd as PID 1); flm man's test renders with man -l.
  command -v systemd-analyze >/dev/null || need+=(systemd)
  command -v man >/dev/null || need+=(man-db)
  if [ ${#need[@]} -gt 0 ]; then
    step "install Debian packages: ${need[*]}"
    apt_install "${need[@]}"
  fi
}

install_staticcheck
install_apidiff
install_packaging
install_pebble
install_debian_tools
install_keyring
install_node
install_clienttest
install_chromium
install_uitest
install_testsummary
# ======================== end of the install section ========================

full_run=""
if [ $# -eq 0 ]; then full_run=1; fi
mods=("$@")
if [ ${#mods[@]} -eq 0 ]; then
  mapfile -t mods < <(sed -n 's#^\s*\./\([a-z/-]*\)$#\1#p' go.work)
fi

step "gofmt"
unformatted=$(gofmt -l "${mods[@]}")
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

summary=()
checks_failed=0 # set by a failing test, benchmark or coverage floor
mkdir -p "$work/json"
for m in "${mods[@]}"; do
  if [ -z "$(cd "$m" && go list ./... 2>/dev/null)" ]; then
    summary+=("$m: no Go packages yet"); continue
  fi
  step "$m: build, vet, staticcheck"
  (cd "$m" && go build ./... && go vet ./... && staticcheck ./...)
  if [ "$m" = cli ]; then
    # The macOS and Windows keychain adapters (and the rest of flm) must
    # at least build and vet for those systems.
    step "cli: build for windows, vet for darwin"
    (cd cli && GOOS=windows go build ./... && GOOS=darwin go vet ./...)
  fi
  if [ "$m" = core ]; then
    step "core: API check against core/api (apidiff), and the checker's selftest"
    bash tools/scripts/api.sh check
    bash tools/scripts/api.sh selftest
  fi

  step "$m: test -race"
  cover=()
  if [ "$m" = core ]; then cover=(-coverprofile="$PWD/coverage-core.txt" -coverpkg=./...); fi
  json="$work/json/${m//\//_}.json"
  set +e
  (cd "$m" && go test -race -count=1 -json "${cover[@]}" ./...) | tee "$json" | "$work/testsummary" stream
  codes=("${PIPESTATUS[@]}")
  set -e
  if [ "${codes[0]}" -ne 0 ] && [ "${codes[2]}" -eq 0 ]; then
    # go test failed before reporting any failed package (its message is on
    # stderr above): count it, so the closing line cannot say 0 failed.
    echo "FAIL	$m [go test exited ${codes[0]}]"
    printf '{"Action":"start","Package":"%s"}\n{"Action":"fail","Package":"%s"}\n' "$m" "$m" >>"$json"
  fi
  if [ "${codes[0]}" -ne 0 ] || [ "${codes[2]}" -ne 0 ]; then
    checks_failed=1
    summary+=("$m: tests FAILED")
    continue
  fi

  # Benchmarks run once so they keep compiling and working; no timing is
  # asserted (docs/PERFORMANCE.md has the figures and how to get them).
  if grep -rqs --include='*_test.go' '^func Benchmark' "$m"; then
    step "$m: benchmarks once (-benchtime=1x)"
    if ! (cd "$m" && go test -run '^$' -bench . -benchtime 1x ./... >"$work/bench.log" 2>&1); then
      cat "$work/bench.log"
      checks_failed=1
      summary+=("$m: benchmarks FAILED")
    fi
  fi
  if [ "$m" = core ]; then
    total=$(go tool cover -func=coverage-core.txt | awk '/^total:/ {sub("%","",$3); print $3}')
    summary+=("core coverage: ${total}% (floor ${CORE_COVERAGE_MIN}%)")
    if ! awk -v t="$total" -v min="$CORE_COVERAGE_MIN" 'BEGIN { exit !(t >= min) }'; then
      checks_failed=1
      summary+=("core coverage ${total}% is below ${CORE_COVERAGE_MIN}%: FAILED")
    fi
  fi
done

# The release dry run (full runs only): the committed HEAD is released in a
# temporary clone (tags, a file module proxy), flm is built from it outside
# the workspace, then goreleaser makes every archive and package, and the
# .deb is installed, checked and purged as root (docs/RELEASING.md).
if [ -n "$full_run" ]; then
  step "release dry run: module boundary, then packages"
  if ! bash tools/scripts/boundary.sh "$work/release" || ! bash tools/scripts/package.sh check "$work/release"; then
    checks_failed=1
    summary+=("release dry run FAILED")
  else
    summary+=("release dry run: module boundary and packages checked")
  fi
fi

step "summary"
ci=()
if [ "${CI:-}" = true ]; then ci=(-ci); fi
shopt -s nullglob
status=0
counts=$("$work/testsummary" total "${ci[@]}" -allow "$SKIP_ALLOWLIST" "$work"/json/*.json) || status=$?
if [ ${#summary[@]} -gt 0 ]; then printf '%s\n' "${summary[@]}"; fi
if [ $status -eq 0 ] && [ $checks_failed -eq 0 ]; then
  echo "all checks passed for: ${mods[*]}"
fi
# The closing line (tests: N passed, N failed, N skipped) comes last.
printf '%s\n' "$counts"
if [ $checks_failed -ne 0 ]; then exit 1; fi
exit $status
