#!/usr/bin/env bash
# goreleaser's before-hook (.goreleaser.yaml): writes the man page and the
# shell completions that the archives and the .deb/.rpm ship, generated from
# the command tree of a host build of flm so they never drift from it:
#
#   packaging/generated/man/flm.1.gz              flm man | gzip -9n
#   packaging/generated/completions/flm.bash      flm completion bash
#   packaging/generated/completions/flm.fish      flm completion fish
#   packaging/generated/completions/_flm          for zsh's fpath (see below)
#
# packaging/generated/ is gitignored. Run from anywhere; it works on the
# repository it lives in.
set -euo pipefail
cd "$(dirname "$0")/.."

out=packaging/generated
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A host build (GOOS/GOARCH are the machine's; the workspace's modules).
env -u GOOS -u GOARCH CGO_ENABLED=0 go build -trimpath -o "$tmp/flm" ./cli/cmd/flm
# The data dir is a throw-away one: printing help text must not create the
# user's ~/.local/share/flm on the release machine.
flm() { FLM_DATA_DIR="$tmp/data" "$tmp/flm" "$@"; }

flm man >"$tmp/flm.1"
if ! grep -q '^\.TH ' "$tmp/flm.1"; then
  echo "generate.sh: 'flm man' printed no roff page (.TH missing)" >&2
  exit 1
fi
gzip -9n <"$tmp/flm.1" >"$out/man/flm.1.gz"

flm completion bash >"$out/completions/flm.bash"
flm completion fish >"$out/completions/flm.fish"
# zsh only registers a file of its fpath if its first line is "#compdef";
# the file is then run as the body of the function _flm on the first
# completion. `flm completion zsh` is a bash-style script for bashcompinit
# (it defines _flm and registers it with `complete`); the last line hands
# that first completion to it, later ones go straight through `complete`.
{
  echo '#compdef flm'
  flm completion zsh
  echo '_bash_complete -o default -F _flm "$@"'
} >"$out/completions/_flm"
ls -l "$out/man" "$out/completions"
