#!/usr/bin/env bash
# core's API freeze: compares core's exported API with the snapshots committed
# in core/api/ (docs/guides/VERSIONING_POLICY.md).
#
#   bash tools/scripts/api.sh install    # apidiff at the pinned version (idempotent)
#   bash tools/scripts/api.sh check      # CI: both checks below; exit 1 on a finding
#   bash tools/scripts/api.sh update     # rewrite core/api/current.{apidiff,txt}
#   bash tools/scripts/api.sh selftest   # prove `check` catches what it must, on a temp copy
#   bash tools/scripts/api.sh regen-v1 REF          # rewrite v1.{apidiff,txt} from core at git REF
#                                                   # (the core/v1.0.0 tag), after a Go or x/exp upgrade
#   bash tools/scripts/api.sh baseline --yes-new-major  # new v1.{apidiff,txt} from the tree:
#                                                   # only when a new major version is released
#
# The two checks of `check`:
#   1. against core/api/v1.apidiff (the v1.0.0 API, never rewritten within
#      major version 1): no incompatible change;
#   2. against core/api/current.apidiff: no change at all, so every addition
#      to the API is reviewed as a change of that file (`update`).
#
# apidiff exits 0 even when it reports incompatible changes: a check fails on
# any output on stdout, and on a non-zero exit (a package that does not load).
# Its stderr says "Ignoring internal package …" on every run; it is shown only
# when a check fails.
#
# Snapshots are written with -trimpath, so they name files by module path,
# not by where the checkout lives: a rewrite from another directory or
# machine with the same Go and apidiff gives the same bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

APIDIFF_MODULE=golang.org/x/exp
APIDIFF_VERSION=v0.0.0-20261113113407-e3970619a1a4
MODULE=github.com/unjuno/flm/core
CORE_DIR=$ROOT/core
API_DIR=$CORE_DIR/api
V1=$API_DIR/v1.apidiff
CURRENT=$API_DIR/current.apidiff

gobin() {
  local b
  b=$(go env GOBIN)
  if [ -z "$b" ]; then b="$(go env GOPATH)/bin"; fi
  printf '%s\n' "$b"
}
APIDIFF="$(gobin)/apidiff"

die() {
  echo "api.sh: $*" >&2
  exit 1
}

apidiff_installed() {
  [ -x "$APIDIFF" ] &&
    go version -m "$APIDIFF" 2>/dev/null |
    awk -v m="$APIDIFF_MODULE" -v v="$APIDIFF_VERSION" '$1 == "mod" && $2 == m && $3 == v { found = 1 } END { exit !found }'
}

cmd_install() {
  if apidiff_installed; then return 0; fi
  echo "api.sh: installing apidiff ($APIDIFF_MODULE@$APIDIFF_VERSION)" >&2
  go install "$APIDIFF_MODULE/cmd/apidiff@$APIDIFF_VERSION"
  apidiff_installed || die "$APIDIFF is not $APIDIFF_MODULE@$APIDIFF_VERSION after go install"
}

need_apidiff() {
  # Snapshots are gcexportdata: another apidiff (or the Go it was built with)
  # may read them differently, so only the pinned one is used.
  apidiff_installed || die "apidiff $APIDIFF_VERSION is not installed: run \`bash tools/scripts/api.sh install\`"
}

# apidiff loads the module from the directory it runs in (elsewhere it would
# look in the module cache). core imports the standard library only, so it is
# loaded on its own (GOWORK=off): the sibling modules' state cannot matter.
apidiff_in() { # DIR ARGS...
  local dir=$1
  shift
  (cd "$dir" && GOWORK=off GOFLAGS="${GOFLAGS:-} -trimpath" "$APIDIFF" "$@")
}

# run_apidiff DIR OUT ERR ARGS...: stdout to OUT, stderr to ERR; returns
# apidiff's exit status.
run_apidiff() {
  local dir=$1 out=$2 err=$3
  shift 3
  local rc=0
  apidiff_in "$dir" "$@" >"$out" 2>"$err" || rc=$?
  return $rc
}

# APIVERSION_BUMP matches apidiff's one finding that check 1 lets through:
# core.APIVersion set to another 1.x.y. apidiff counts any new value of a
# constant as incompatible, but this one is meant to name the v1 minor
# release that last grew the API (VERSIONING_POLICY.md); a new major fails.
APIVERSION_BUMP='^- APIVersion: value changed from "1\.[0-9]+\.[0-9]+" to "1\.[0-9]+\.[0-9]+"$'

# check_incompatible DIR SNAPSHOT: check 1. Prints the finding; returns 1 on one.
check_incompatible() {
  local dir=$1 snap=$2 out err rc=0
  out=$(mktemp) err=$(mktemp)
  run_apidiff "$dir" "$out" "$err" -m -incompatible "$snap" "$MODULE" || rc=$?
  if [ $rc -eq 0 ]; then
    { grep -v -E "$APIVERSION_BUMP" "$out" || true; } >"$out.kept"
    mv "$out.kept" "$out"
  fi
  if [ $rc -ne 0 ] || [ -s "$out" ]; then
    echo "core: incompatible API change against v1.0.0 ($(basename "$snap"))"
    cat "$out"
    if [ $rc -ne 0 ]; then echo "(apidiff exited $rc)"; fi
    sed 's/^/apidiff stderr: /' "$err"
    rm -f "$out" "$err"
    return 1
  fi
  rm -f "$out" "$err"
}

# check_current DIR SNAPSHOT: check 2. Prints the finding; returns 1 on one.
check_current() {
  local dir=$1 snap=$2 out err rc=0
  out=$(mktemp) err=$(mktemp)
  run_apidiff "$dir" "$out" "$err" -m "$snap" "$MODULE" || rc=$?
  if [ $rc -ne 0 ] || [ -s "$out" ]; then
    echo "core's exported API changed; run \`bash tools/scripts/api.sh update\` and commit core/api/current.apidiff"
    cat "$out"
    if [ $rc -ne 0 ]; then echo "(apidiff exited $rc)"; fi
    sed 's/^/apidiff stderr: /' "$err"
    rm -f "$out" "$err"
    return 1
  fi
  rm -f "$out" "$err"
}

cmd_check() {
  need_apidiff
  [ -f "$V1" ] || die "$V1 is missing"
  [ -f "$CURRENT" ] || die "$CURRENT is missing"
  local failed=0
  check_incompatible "$CORE_DIR" "$V1" || failed=1
  check_current "$CORE_DIR" "$CURRENT" || failed=1
  if [ $failed -ne 0 ]; then exit 1; fi
  echo "core API: compatible with v1.0.0 and equal to core/api/current.apidiff"
}

# write_snapshot DIR FILE: apidiff export data of the module in DIR, written
# to a temporary file first so a failure leaves FILE as it was.
write_snapshot() {
  local dir=$1 file=$2 tmp err rc=0
  tmp=$(mktemp "$file.XXXXXX") err=$(mktemp)
  apidiff_in "$dir" -m -w "$tmp" "$MODULE" 2>"$err" || rc=$?
  if [ $rc -ne 0 ] || [ ! -s "$tmp" ]; then
    cat "$err" >&2
    rm -f "$tmp" "$err"
    die "apidiff -w failed in $dir"
  fi
  rm -f "$err"
  chmod 0644 "$tmp"
  mv "$tmp" "$file"
}

# write_text DIR FILE: the readable companion of a snapshot, for reviewers:
# `go doc -all` of every exported package of the module in DIR, in `go list`
# order. apidiff never reads it; its wording follows the Go release that
# wrote it.
write_text() {
  local dir=$1 file=$2 tmp
  tmp=$(mktemp "$file.XXXXXX")
  (
    cd "$dir"
    export GOWORK=off
    echo "# The exported API of $MODULE, as \`go doc -all\` shows it."
    echo "# Written by tools/scripts/api.sh ($(go env GOVERSION)); the checked snapshot is the .apidiff file beside this one."
    local p rel
    for p in $(go list ./... | grep -v -e '/internal/' -e '/internal$'); do
      rel=.${p#"$MODULE"}
      printf '\n================================================================================\n'
      printf '%s\n' "$p"
      printf '================================================================================\n\n'
      go doc -all "${rel:-.}"
    done
  ) >"$tmp" || {
    rm -f "$tmp"
    die "go doc failed in $dir"
  }
  chmod 0644 "$tmp"
  mv "$tmp" "$file"
}

cmd_update() {
  need_apidiff
  mkdir -p "$API_DIR"
  write_snapshot "$CORE_DIR" "$CURRENT"
  write_text "$CORE_DIR" "$API_DIR/current.txt"
  echo "wrote core/api/current.apidiff and core/api/current.txt"
  # An update can record an addition, never make a breaking change pass.
  check_incompatible "$CORE_DIR" "$V1" || {
    echo "api.sh update: the snapshot is written, but check 1 (against v1.0.0) still fails: see VERSIONING_POLICY.md" >&2
    exit 1
  }
}

cmd_baseline() {
  if [ "${1:-}" != --yes-new-major ]; then
    die "baseline rewrites core/api/v1.apidiff, the API every v1 release must stay compatible with.
Only the release of a new major version does that (docs/guides/VERSIONING_POLICY.md).
To record an addition use \`update\`; to rewrite v1 after a Go or x/exp upgrade use \`regen-v1 core/v1.0.0\`.
If you really release a new major: bash tools/scripts/api.sh baseline --yes-new-major"
  fi
  need_apidiff
  mkdir -p "$API_DIR"
  write_snapshot "$CORE_DIR" "$V1"
  write_text "$CORE_DIR" "$API_DIR/v1.txt"
  write_snapshot "$CORE_DIR" "$CURRENT"
  write_text "$CORE_DIR" "$API_DIR/current.txt"
  echo "wrote core/api/v1.{apidiff,txt} and core/api/current.{apidiff,txt} from the working tree"
}

# regen-v1 REF: the same v1 API, re-encoded by the apidiff and Go in use:
# the snapshot is gcexportdata, whose format may change with either. It is
# written from core as it was at REF (the core/v1.0.0 tag), never from HEAD,
# which may have grown since.
cmd_regen_v1() {
  local ref=${1:-}
  [ -n "$ref" ] || die "usage: api.sh regen-v1 REF (the tag of the v1.0.0 release: core/v1.0.0)"
  need_apidiff
  git -C "$ROOT" rev-parse --verify -q "$ref^{commit}" >/dev/null || die "no such git revision: $ref"
  REGEN_TMP=$(mktemp -d)
  trap 'rm -rf "$REGEN_TMP"' EXIT
  git -C "$ROOT" archive "$ref" core | tar -x -C "$REGEN_TMP"
  write_snapshot "$REGEN_TMP/core" "$V1"
  write_text "$REGEN_TMP/core" "$API_DIR/v1.txt"
  echo "wrote core/api/v1.{apidiff,txt} from core at $ref"
  # The tree at REF must agree with the file it wrote.
  check_incompatible "$REGEN_TMP/core" "$V1" >/dev/null || die "the v1 snapshot written from $ref does not match $ref itself"
}

# ---------------------------------------------------------------------------
# selftest: `check`'s logic on a temporary copy of core (same module path,
# GOWORK=off) against the real committed snapshots. Each case sets the copy
# to a known state and states what checks 1 and 2 must say.
# ---------------------------------------------------------------------------

selftest_failures=0

# expect NAME CHECK(incompatible|current) pass|fail [SUBSTRING]
expect() {
  local name=$1 which=$2 want=$3 substr=${4:-} got out rc=0
  if [ "$which" = incompatible ]; then
    out=$(check_incompatible "$ST_DIR" "$V1") || rc=$?
  else
    out=$(check_current "$ST_DIR" "$CURRENT") || rc=$?
  fi
  if [ $rc -eq 0 ]; then got=pass; else got=fail; fi
  if [ "$got" = "$want" ] && { [ -z "$substr" ] || grep -qF -- "$substr" <<<"$out"; }; then
    echo "ok    $name: check $which: $got${substr:+ (\"$substr\")}"
  else
    echo "FAIL  $name: check $which: $got, want $want${substr:+ with \"$substr\"}"
    printf '%s\n' "$out" | sed 's/^/      /'
    selftest_failures=$((selftest_failures + 1))
  fi
}

# mutate FILE SED-EXPR: applies the edit and fails the selftest if it
# changed nothing (core's source moved on: fix the case).
mutate() {
  local file=$ST_DIR/$1 expr=$2
  cp "$file" "$file.orig"
  sed -i "$expr" "$file"
  if cmp -s "$file" "$file.orig"; then
    echo "FAIL  selftest: the edit $expr changed nothing in core/$1 (source moved on? update the case)"
    selftest_failures=$((selftest_failures + 1))
    return 1
  fi
}

restore() { mv "$ST_DIR/$1.orig" "$ST_DIR/$1"; }

cmd_selftest() {
  need_apidiff
  if [ ! -f "$V1" ] || [ ! -f "$CURRENT" ]; then die "the snapshots in core/api are missing"; fi
  local start
  start=$(date +%s)
  ST_TMP=$(mktemp -d)
  trap 'rm -rf "$ST_TMP"' EXIT
  ST_DIR=$ST_TMP/core
  cp -a "$CORE_DIR" "$ST_DIR"
  rm -rf "$ST_DIR/api"

  # (c) unchanged: both checks pass.
  expect "unchanged" incompatible pass
  expect "unchanged" current pass

  # (a) incompatible changes: check 1 fails with apidiff's finding. Every
  # edit is made in the root package, which no other package of core
  # imports, so only it is compiled again.
  if mutate doc.go 's/^const APIVersion = /var APIVersion = /'; then
    expect "const APIVersion -> var" incompatible fail "APIVersion: changed from const to var"
    restore doc.go
  fi
  if mutate doc.go '/^const APIVersion = /d'; then
    expect "APIVersion removed" incompatible fail "APIVersion: removed"
    restore doc.go
  fi

  # APIVersion names the v1 release that last grew the API: another 1.x.y
  # passes check 1 (and needs `update`); 2.0.0 is a new major and fails.
  if mutate doc.go 's/^const APIVersion = "1\.0\.0"/const APIVersion = "1.1.0"/'; then
    expect "APIVersion 1.0.0 -> 1.1.0" incompatible pass
    expect "APIVersion 1.0.0 -> 1.1.0" current fail 'APIVersion: value changed from "1.0.0" to "1.1.0"'
    restore doc.go
  fi
  if mutate doc.go 's/^const APIVersion = "1\.0\.0"/const APIVersion = "2.0.0"/'; then
    expect "APIVersion 1.0.0 -> 2.0.0" incompatible fail 'APIVersion: value changed from "1.0.0" to "2.0.0"'
    restore doc.go
  fi

  # (b) a compatible addition: check 1 passes, check 2 asks for `update`.
  printf 'package core\n\n// SelftestAdded exists only in api.sh selftest'"'"'s copy.\nfunc SelftestAdded() {}\n' >"$ST_DIR/zz_selftest.go"
  expect "exported func added" incompatible pass
  expect "exported func added" current fail "SelftestAdded: added"
  rm "$ST_DIR/zz_selftest.go"

  # (d) a module that does not load: apidiff exits non-zero with nothing on
  # stdout; both checks must still fail.
  printf 'package core\n\nfunc broken( {\n' >"$ST_DIR/zz_broken.go"
  expect "does not compile" incompatible fail "apidiff exited"
  expect "does not compile" current fail "apidiff exited"
  rm "$ST_DIR/zz_broken.go"

  echo "selftest: $selftest_failures failure(s), $(($(date +%s) - start)) s"
  if [ $selftest_failures -ne 0 ]; then exit 1; fi
}

case "${1:-}" in
install) cmd_install ;;
check) cmd_check ;;
update) cmd_update ;;
baseline)
  shift
  cmd_baseline "$@"
  ;;
regen-v1)
  shift
  cmd_regen_v1 "$@"
  ;;
selftest) cmd_selftest ;;
*)
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
