#!/usr/bin/env bash
# Runs `go mod tidy` in every module of the workspace.
#
# The modules are not published yet, so a go.mod cannot require a sibling at
# a real version: the go command would try to download it even in workspace
# mode. Until the first release tags exist, sibling requirements stay out of
# go.mod and go.work resolves them (docs/adr/0001-module-versioning.md).
# `go mod tidy` ignores go.work, so for the tidy each sibling is replaced by
# its directory, and afterwards the replace and require lines are dropped.
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix=github.com/unjuno/flm
mods=$(sed -n 's#^\s*\./\([a-z-]*\)$#\1#p' go.work)
for m in $mods; do
  (
    cd "$m"
    cleanup() {
      for s in $mods; do
        go mod edit -dropreplace "$prefix/$s" -droprequire "$prefix/$s"
      done
    }
    trap cleanup EXIT
    for s in $mods; do
      [ "$s" = "$m" ] || go mod edit -replace "$prefix/$s=../$s"
    done
    GOWORK=off GOFLAGS=-mod=mod go mod tidy
  )
done
