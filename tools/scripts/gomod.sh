#!/usr/bin/env bash
# Runs a go command that edits one module's go.mod/go.sum (`go get`,
# `go mod tidy`) the way day-to-day dependency changes need it.
#
#   bash tools/scripts/gomod.sh cli get github.com/kardianos/service@v1.3.0
#   bash tools/scripts/gomod.sh proxy mod tidy
#   bash tools/scripts/gomod.sh all mod tidy        # every module of go.work
#
# Why a script: each go.mod requires its sibling modules at their release
# versions (github.com/unjuno/flm/core v1.0.0) and go.work's pinned replaces
# resolve them in the workspace. But `go get` and `go mod tidy` work on one
# module and ignore go.work's replaces, so they would try to download
# core@v1.0.0 (proxy.golang.org answers 403 for a version that is not
# published yet, or the published one, not this checkout). So for the
# command each sibling is replaced by its directory in go.mod, the command
# runs with GOWORK=off, then the replaces are dropped and the sibling lines
# tidy removed from go.sum (a replaced module needs no hash) are put back for
# the siblings still required at the same version. No replace stays in go.mod
# (docs/adr/0004-module-boundary.md).
#
# A new import of a sibling: run `go run ./tools/release sync` first (it adds
# the require at the versions.yaml version). Sibling go.sum hashes are only
# recomputed at release time (tools/scripts/release-sums.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
prefix=github.com/unjuno/flm

if [ $# -lt 2 ]; then
  echo "usage: gomod.sh <module dir|all> <go arguments, e.g. get X@v | mod tidy>" >&2
  exit 2
fi
target=$1
shift

mapfile -t dirs < <(sed -n 's#^\s*\./\([a-z/-]*\)$#\1#p' go.work)
if [ "$target" = all ]; then
  mods=("${dirs[@]}")
else
  target=${target%/}
  target=${target#./}
  found=
  for d in "${dirs[@]}"; do [ "$d" = "$target" ] && found=1; done
  if [ -z "$found" ]; then
    echo "gomod.sh: $target is not a module of go.work (${dirs[*]})" >&2
    exit 2
  fi
  mods=("$target")
fi

modpath() { sed -n 's/^module[[:space:]]*//p' "$1/go.mod" | head -1; }

# State of the module being edited, global so that the EXIT trap can undo
# the temporary replaces if the go command fails or is interrupted.
cur_dir='' saved='' reps=()

restore() {
  [ -n "$cur_dir" ] || return 0
  local args=() r keep line p v
  for r in "${reps[@]}"; do args+=(-dropreplace "${r%%=*}"); done
  (cd "$cur_dir" && go mod edit "${args[@]}")
  # Put back the sibling go.sum lines of siblings still required at the
  # same version. go.sum is sorted by module path (byte order) with each
  # path's lines in version order: a stable sort on the path keeps that.
  if [ -s "$saved" ]; then
    keep=$(mktemp)
    while IFS= read -r line; do
      p=${line%% *}
      v=${line#* }
      v=${v%% *}
      v=${v%/go.mod}
      if grep -Eq "^(require)?[[:space:]]*${p//./\\.} ${v//./\\.}([[:space:]]|$)" "$cur_dir/go.mod"; then
        printf '%s\n' "$line" >>"$keep"
      fi
    done <"$saved"
    touch "$cur_dir/go.sum"
    cat "$cur_dir/go.sum" "$keep" | awk '!seen[$0]++' | LC_ALL=C sort -s -t' ' -k1,1 >"$cur_dir/go.sum.new"
    mv "$cur_dir/go.sum.new" "$cur_dir/go.sum"
    [ -s "$cur_dir/go.sum" ] || rm -f "$cur_dir/go.sum"
    rm -f "$keep"
  fi
  rm -f "$saved"
  cur_dir=
}
trap restore EXIT

run_in() {
  local m=$1 s r rc=0
  shift
  local dir=$root/$m
  saved=$(mktemp)
  grep "^$prefix/" "$dir/go.sum" >"$saved" 2>/dev/null || true
  reps=()
  for s in "${dirs[@]}"; do
    [ "$s" = "$m" ] && continue
    reps+=("$(modpath "$s")=$(realpath --relative-to="$dir" "$root/$s")")
  done
  local args=()
  for r in "${reps[@]}"; do args+=(-replace "$r"); done
  cur_dir=$dir
  (cd "$dir" && go mod edit "${args[@]}")
  echo "gomod.sh: $m: go $*"
  (cd "$dir" && GOWORK=off GOFLAGS=-mod=mod go "$@") || rc=$?
  restore
  return $rc
}

for m in "${mods[@]}"; do
  run_in "$m" "$@"
done
