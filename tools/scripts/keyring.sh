#!/usr/bin/env bash
# The real Linux keychain for tests: gnome-keyring on a private D-Bus session.
#
#   tools/scripts/keyring.sh install          # Debian packages (idempotent)
#   tools/scripts/keyring.sh run -- CMD ARGS  # CMD inside dbus-run-session with
#                                             # an unlocked login keyring
#   tools/scripts/keyring.sh check            # exit 0 if a keyring answers here
#
# `run` gives CMD a session bus (DBUS_SESSION_BUS_ADDRESS) whose Secret Service
# is a gnome-keyring-daemon with an unlocked login keyring kept in a temporary
# directory, removed afterwards: the user's own keyring is never touched. The
# flm tests of the keychain adapter start their own private keyring from the
# same packages, so `install` is all they need; `run` is for exercising the
# flm binary (and the cli process tests) against a real keychain, as a desktop
# user would have it.
#
# Exit status: CMD's under `run`; non-zero if a package cannot be installed.
set -euo pipefail

PACKAGES=(gnome-keyring dbus dbus-x11 libsecret-tools)

need_install() {
  local p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      return 0
    fi
  done
  return 1
}

install() {
  if ! need_install; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "keyring.sh: installing ${PACKAGES[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  dpkg-query -W -f='keyring.sh: ${Package} ${Version}\n' "${PACKAGES[@]}" >&2
}

# inner runs inside dbus-run-session: start the keyring daemon on this bus
# with an unlocked login keyring, wait until it takes an item, run CMD.
inner() {
  local tmp="$KEYRING_SH_TMP"
  export XDG_RUNTIME_DIR="$tmp/run"
  mkdir -p "$XDG_RUNTIME_DIR" "$tmp/data"
  chmod 700 "$XDG_RUNTIME_DIR"
  # The keyring files go to the temporary dir, not ~/.local/share/keyrings.
  printf pw | XDG_DATA_HOME="$tmp/data" gnome-keyring-daemon --unlock --components=secrets >/dev/null
  local i
  for i in $(seq 1 100); do
    if printf probe | secret-tool store --label=probe flm-keyring-sh probe 2>/dev/null; then
      secret-tool clear flm-keyring-sh probe 2>/dev/null || true
      exec "$@"
    fi
    sleep 0.1
  done
  echo "keyring.sh: gnome-keyring did not come up on the session bus" >&2
  exit 1
}

run() {
  install
  KEYRING_SH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/flm-keyring.XXXXXX")
  trap 'rm -rf "$KEYRING_SH_TMP"' EXIT
  local rc=0
  KEYRING_SH_TMP="$KEYRING_SH_TMP" dbus-run-session -- "$0" __inner "$@" || rc=$?
  return "$rc"
}

case "${1:-}" in
  install) install ;;
  run)
    shift
    if [ "${1:-}" = "--" ]; then shift; fi
    if [ $# -eq 0 ]; then echo "usage: $0 run -- CMD [ARGS…]" >&2; exit 2; fi
    run "$@"
    ;;
  check)
    command -v secret-tool >/dev/null && [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] &&
      printf probe | secret-tool store --label=probe flm-keyring-sh probe 2>/dev/null &&
      secret-tool clear flm-keyring-sh probe
    ;;
  __inner) shift; inner "$@" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
