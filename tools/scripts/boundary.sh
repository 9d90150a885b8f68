#!/usr/bin/env bash
# CI proof that the module boundary is real (issue 14, ADR 0004): a pretend
# release of the committed HEAD in a temporary clone, then `flm` is built
# OUTSIDE the workspace (GOWORK=off) from a file module proxy made from the
# release tags, and a scratch module does `go get …/core@v1.0.0`.
#
#   bash tools/scripts/boundary.sh OUT              # the committed HEAD
#   bash tools/scripts/boundary.sh --worktree OUT   # HEAD plus the working
#                                                   # tree's changes (a dev check)
#
# Without --worktree it checks what is committed: `git clone --no-local` of this
# checkout, so uncommitted changes (even to tracked files) are not in it; it
# says so when the tree is dirty. With --worktree the clone gets the working
# tree's tracked and untracked (not ignored) files and deletions, committed in
# the clone only.
#
# In OUT/repo: release sync, release-sums.sh, commit "release dry run", the
# release tags (core/v1.0.0 … from versions.yaml). OUT/proxy: the file proxy
# made from those tags. OUT/modcache: the module cache of the checks (never the
# real one: github.com/unjuno/flm/* must not enter it). OUT/bin/flm: the binary
# `go install …/cli/cmd/flm@<cli version>` built. All four are left for the
# packaging step (tools/scripts/package.sh check OUT runs goreleaser in OUT/repo with
# this proxy). One line per check; exit 1 if any fails.
set -euo pipefail

worktree=
if [ "${1:-}" = --worktree ]; then
  worktree=1
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: boundary.sh [--worktree] OUT" >&2
  exit 2
fi
src=$(cd "$(dirname "$0")/../.." && git rev-parse --show-toplevel)
mkdir -p "$1"
out=$(cd "$1" && pwd)
prefix=github.com/unjuno/flm
real_cache=$(GOFLAGS='' go env GOMODCACHE)
t0=$SECONDS
fails=0

say() { echo "boundary: $*"; }
ok() { say "ok   $*"; }
fail() {
  say "FAIL $*"
  fails=$((fails + 1))
}
die() {
  say "FAIL $*"
  exit 1
}
# step NAME CMD…: runs a setup step, its output in OUT/logs/NAME.log; a failed
# step ends the run (the later checks depend on it).
step() {
  local name=$1 s=$SECONDS
  shift
  if "$@" >"$out/logs/$name.log" 2>&1; then
    ok "$name ($((SECONDS - s)) s)"
  else
    tail -n 30 "$out/logs/$name.log" | sed 's/^/    /'
    die "$name (log: $out/logs/$name.log)"
  fi
}

# A previous run's results go first; the module cache is read-only unless
# made writable.
for d in repo proxy modcache bin scratch logs; do
  [ -e "$out/$d" ] && chmod -R u+w "$out/$d" && rm -rf "${out:?}/$d"
done
mkdir -p "$out/logs" "$out/bin" "$out/scratch"

head=$(git -C "$src" rev-parse --short HEAD)
dirty=$(git -C "$src" status --porcelain)
if [ -z "$worktree" ] && [ -n "$dirty" ]; then
  say "note: $src has uncommitted changes; this checks the committed HEAD $head only (use --worktree to include them)"
fi

clone() {
  git clone -q --no-local "$src" "$out/repo"
  if [ -n "$worktree" ]; then
    # The working tree's files over the clone: tracked and untracked but not
    # ignored files that exist, and the deletions of tracked files.
    (cd "$src" && git ls-files -z -co --exclude-standard) |
      while IFS= read -r -d '' f; do
        if [ -e "$src/$f" ] || [ -L "$src/$f" ]; then printf '%s\0' "$f"; fi
      done | (cd "$src" && xargs -0 -r cp -a --parents -t "$out/repo")
    (cd "$src" && git ls-files -z -d) | (cd "$out/repo" && xargs -0 -r rm -f --)
    git -C "$out/repo" add -A
    git -C "$out/repo" -c user.name=boundary -c user.email=boundary@invalid \
      commit -q --allow-empty -m "working tree of $head"
  fi
}
step clone clone
cd "$out/repo"

# Every go command from here on: a temporary module cache, the sibling modules
# from the file proxy only, no checksum database lookup for them (GONOSUMDB,
# not GOPRIVATE, which would also bypass the proxy), third-party modules from
# the real module cache read as a file proxy, then proxy.golang.org.
export GOMODCACHE=$out/modcache GOFLAGS=-modcacherw GONOSUMDB=$prefix GOTOOLCHAIN=local
# OUT/modcache is rebuilt with new contents under the same paths (cli@v1.0.0 …),
# but the go command's module index (in GOCACHE) assumes a module-cache
# directory never changes: a re-run in the same OUT after HEAD changed fails
# ("could not import net (open : no such file or directory)"). No index, then.
export GODEBUG="${GODEBUG:+$GODEBUG,}goindex=0"
export GOPROXY="file://$out/proxy,file://$real_cache/cache/download,https://proxy.golang.org"
unset GOWORK GOPRIVATE GONOPROXY

# The release tool is built in the workspace (go.work resolves the siblings).
step build-release go build -o "$out/bin/release" ./tools/release
release=$out/bin/release
step sync "$release" sync
step release-sums env RELEASE_BIN="$release" REAL_GOMODCACHE="$real_cache" bash tools/scripts/release-sums.sh
commit() {
  git add -A
  git -c user.name=boundary -c user.email=boundary@invalid commit -q --allow-empty -m "release dry run"
}
step commit commit
step tag "$release" tag
step modproxy "$release" modproxy -out "$out/proxy"

# The versions this release promises.
declare -A want
while read -r dir _ ver _; do want[$dir]=$ver; done < <("$release" list)
cli_ver=${want[cli]:?versions.yaml has no cli}
core_ver=${want[core]:?versions.yaml has no core}

export GOWORK=off
cd "$out/scratch"
step install env GOBIN="$out/bin" go install "$prefix/cli/cmd/flm@$cli_ver"

# flm version reports what Go recorded in the binary: each module's tag, not
# (devel).
if ver=$("$out/bin/flm" version 2>&1); then
  bad=
  for dir in "${!want[@]}"; do
    [ "$dir" = tools/enginefake ] && continue # test-only: not linked into flm
    grep -q "\"$dir\":\"${want[$dir]}\"" <<<"$ver" || bad+=" $dir(want ${want[$dir]})"
  done
  grep -q "\"flm\":\"$cli_ver\"" <<<"$ver" || bad+=" flm(want $cli_ver)"
  if [ -z "$bad" ]; then
    ok "flm version reports cli $cli_ver, core $core_ver and the adapters at their versions.yaml versions"
  else
    fail "flm version: wrong or missing versions:$bad; it printed: $ver"
  fi
  if grep -q '(devel)' <<<"$ver"; then fail "flm version shows (devel): $ver"; fi
else
  fail "flm version did not run: $ver"
fi
if vm=$(go version -m "$out/bin/flm"); then
  if grep -q "$prefix/tools" <<<"$vm"; then
    fail "the flm binary links a tools module (test code):"$'\n'"$(grep "$prefix/tools" <<<"$vm")"
  else
    ok "flm links no tools module"
  fi
  if grep -Eq "dep[[:space:]]+${prefix}/core[[:space:]]+${core_ver}[[:space:]]+h1:" <<<"$vm"; then
    ok "go version -m: core $core_ver with its h1 hash"
  else
    fail "go version -m does not list core $core_ver with a hash:"$'\n'"$vm"
  fi
else
  fail "go version -m $out/bin/flm"
fi

# A Go developer builds a front end on the frozen core API.
front() {
  go mod init example.com/flmfront
  cat >main.go <<'EOF'
package main

import (
	"fmt"

	"github.com/unjuno/flm/core"
)

func main() { fmt.Println(core.APIVersion) }
EOF
  go get "$prefix/core@$core_ver"
  go build -o "$out/bin/flmfront" .
}
step scratch-get-core front
api=$("$out/bin/flmfront" 2>&1) || true
core_major=${core_ver%%.*}
if [ "v${api%%.*}" = "$core_major" ]; then
  ok "scratch module: go get $prefix/core@$core_ver, built, core.APIVersion = $api"
else
  fail "scratch module printed core.APIVersion '$api', want a $core_major.x version"
fi
if grep -q "^$prefix/core $core_ver h1:" go.sum; then
  ok "scratch go.sum records core $core_ver"
else
  fail "scratch go.sum has no h1 line for core $core_ver"
fi
if [ -e "$real_cache/cache/download/github.com/unjuno" ] || [ -e "$real_cache/github.com/unjuno" ]; then
  fail "FLM modules are in the real module cache $real_cache (github.com/unjuno): remove them, they shadow regenerated zips"
else
  ok "no FLM module in the real module cache"
fi

if [ "$fails" -ne 0 ]; then
  say "$fails check(s) failed ($((SECONDS - t0)) s)"
  exit 1
fi
say "all checks passed in $((SECONDS - t0)) s; left for packaging: $out/{repo,proxy,modcache,bin}"
