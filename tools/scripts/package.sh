#!/usr/bin/env bash
# The release packages (.goreleaser.yaml): build them and check them.
#
#   tools/scripts/package.sh install     # goreleaser, minisign and the Debian
#                                        # packages the checks use (idempotent)
#   tools/scripts/package.sh snapshot    # quick local: goreleaser release --snapshot
#                                        # in this workspace, then the artifact checks
#   tools/scripts/package.sh check OUT   # the CI dry run of a real release
#
# `check OUT` takes what tools/scripts/boundary.sh OUT leaves: OUT/repo (a
# clone with the release commit and its module tags), OUT/proxy (a file
# GOPROXY holding the tagged modules) and OUT/modcache (a temporary
# GOMODCACHE). In OUT/repo it runs the real (non-snapshot) release, offline
# apart from proxy.golang.org for third-party modules: goreleaser builds
# github.com/unjuno/flm/cli@v<cli version> from the file proxy, outside the
# workspace, so the binaries carry the tagged module versions. Then it checks
# the artifacts and, as root, installs the amd64 .deb on this machine:
# `flm version`, the user flm, /var/lib/flm, the man page, completions,
# `systemd-analyze verify` of the unit, the unit's ExecStart run as user flm
# answering /health, `dpkg -r` (data kept) and `dpkg -P` (data gone).
#
# Each check prints one PASS/FAIL line; the run exits 1 at the end if any
# failed. Without root the .deb part fails under CI=true and is skipped
# (saying so) otherwise. Whatever happens, the exit trap purges the package
# it installed and stops the process it started. It refuses to run the .deb
# part when a package flm, a user flm or /var/lib/flm is already on the
# machine, so it never deletes anyone's data.
#
# Signatures use a throw-away minisign key made for the run (minisign -G -W);
# the release key never comes near this script. Nothing of
# github.com/unjuno/flm reaches the real module cache: `check` builds with
# GOMODCACHE=OUT/modcache, and `snapshot` builds the workspace.
# The checks pass shell snippets to `bash -c '…'` on purpose:
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

GORELEASER_VERSION=v2.15.1
MINISIGN_VERSION=v0.3.0
# minisign: Debian's build, to verify the signature with the tool users
# have; rpm: rpm -qpl/--scripts; systemd: systemd-analyze; man-db: man -w;
# curl: /health; unzip: the Windows archives; passwd, util-linux: useradd,
# runuser (the package's scripts and the service run).
DEBIAN_PACKAGES=(minisign rpm systemd man-db curl unzip passwd util-linux)
# 6 archives; binaries of -s -w -trimpath builds were 30–34 MB when measured.
BINARY_MIN_BYTES=$((15 * 1024 * 1024))
BINARY_MAX_BYTES=$((80 * 1024 * 1024))

GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"
# The Go minisign (signing) comes first on PATH; this is Debian's.
DEBIAN_MINISIGN=/usr/bin/minisign

step() { printf '\n== %s\n' "$*"; }
die() {
  echo "package.sh: $*" >&2
  exit 1
}

# ============================================================================
# install
# ============================================================================

apt_updated=""
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# go_tool_has BIN MODULE VERSION: BIN in GOPATH/bin was built from MODULE@VERSION.
go_tool_has() {
  [ -x "$GOBIN_DIR/$1" ] &&
    go version -m "$GOBIN_DIR/$1" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$2[[:space:]]+$3([[:space:]]|$)"
}

install_goreleaser() {
  if ! go_tool_has goreleaser github.com/goreleaser/goreleaser/v2 "$GORELEASER_VERSION"; then
    step "install goreleaser $GORELEASER_VERSION (about 2 min on a cold cache)"
    go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
  fi
}

install_minisign() {
  if ! go_tool_has minisign aead.dev/minisign "$MINISIGN_VERSION"; then
    step "install minisign $MINISIGN_VERSION (aead.dev/minisign, signs)"
    go install "aead.dev/minisign/cmd/minisign@$MINISIGN_VERSION"
  fi
}

install_debian_packages() {
  local need=() p
  for p in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      need+=("$p")
    fi
  done
  if [ ${#need[@]} -gt 0 ]; then
    step "install Debian packages: ${need[*]}"
    apt_install "${need[@]}"
  fi
}

install() {
  install_goreleaser
  install_minisign
  install_debian_packages
}

# ============================================================================
# checks: each prints one PASS or FAIL line; failures are counted
# ============================================================================

failed=0
passed=0
pass() {
  printf 'PASS  %s\n' "$*"
  passed=$((passed + 1))
}
fail() {
  printf 'FAIL  %s\n' "$*"
  failed=$((failed + 1))
}
# check NAME CMD…: PASS if CMD exits 0; its output is shown only on failure.
check() {
  local name=$1 log
  shift
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then
    pass "$name"
  else
    fail "$name"
    sed 's/^/      /' "$log" | tail -n 30
  fi
  rm -f "$log"
}

# versions.yaml is read by the release tool only (`release list`: dir, module
# path, version, tag per line); RELEASE is how to run it (set by each command).
RELEASE=()

# module_version PATH: the version versions.yaml gives module PATH.
module_version() {
  "${RELEASE[@]}" list | awk -v mod="$1" '$2 == mod { print $3; found = 1 } END { exit !found }'
}

# The released FLM modules and their versions, "name version" per line
# (name as `flm version` shows it: core, proxy, cli, engine-ollama …).
released_modules() {
  "${RELEASE[@]}" list | awk '$1 !~ /^tools\// { print $1, $3 }'
}

# The artifacts of a run, named after the version goreleaser used.
expected_artifacts() {
  local v=$1 os arch
  for os in linux darwin; do
    for arch in amd64 arm64; do echo "flm_${v}_${os}_${arch}.tar.gz"; done
  done
  for arch in amd64 arm64; do echo "flm_${v}_windows_${arch}.zip"; done
  echo "flm_${DEB_VERSION}_amd64.deb"
  echo "flm_${DEB_VERSION}_arm64.deb"
  echo "flm-${RPM_VERSION}-1.x86_64.rpm"
  echo "flm-${RPM_VERSION}-1.aarch64.rpm"
}

# check_artifacts DIST VERSION MODVERSION: what every run must produce.
# MODVERSION is what go version -m must show for cli and core: v1.0.0 for a
# release, "(devel)" for a snapshot (a workspace build).
check_artifacts() {
  local dist=$1 v=$2 modv=$3 f
  # nfpm's conventional names: the first "-" (the prerelease) becomes "~";
  # rpm turns the other ones into "_" (1.0.0-SNAPSHOT-abc →
  # flm_1.0.0~SNAPSHOT-abc_amd64.deb, flm-1.0.0~SNAPSHOT_abc-1.x86_64.rpm).
  DEB_VERSION=${v/-/\~}
  RPM_VERSION=${DEB_VERSION//-/_}
  step "artifacts in $dist (version $v)"
  local missing=()
  while read -r f; do
    [ -s "$dist/$f" ] || missing+=("$f")
  done < <(expected_artifacts "$v"; echo checksums.txt; echo checksums.txt.minisig)
  if [ ${#missing[@]} -eq 0 ]; then
    pass "6 archives, 2 .deb, 2 .rpm, checksums.txt and checksums.txt.minisig exist"
  else
    fail "missing artifacts: ${missing[*]} (dist has: $(cd "$dist" && ls -1 | tr '\n' ' '))"
  fi

  check "checksums.txt lists exactly the 10 archives and packages" \
    diff <(expected_artifacts "$v" | sort) <(awk '{print $2}' "$dist/checksums.txt" | sort)
  check "sha256sum -c checksums.txt" bash -c "cd '$dist' && sha256sum -c --strict checksums.txt"

  # The signature, verified with Debian's minisign as a user would.
  local pub
  pub=$(sed -n 2p "$MINISIGN_PUB")
  check "minisign signature of checksums.txt verifies (Debian minisign $(dpkg-query -W -f='${Version}' minisign))" \
    bash -c "cd '$dist' && '$DEBIAN_MINISIGN' -Vm checksums.txt -P '$pub' | grep -Fx 'Trusted comment: flm $v'"
  local tampered="$WORK/tampered"
  mkdir -p "$tampered"
  # One hex digit of the first hash changed.
  if ! cp "$dist/checksums.txt" "$dist/checksums.txt.minisig" "$tampered/" 2>/dev/null; then
    fail "a tampered checksums.txt fails verification: no checksums.txt or .minisig to tamper with"
  elif [ "$(head -c1 "$tampered/checksums.txt")" = 0 ]; then
    sed -i '1s/^./1/' "$tampered/checksums.txt"
  else
    sed -i '1s/^./0/' "$tampered/checksums.txt"
  fi
  if [ ! -s "$tampered/checksums.txt" ]; then
    : # reported above
  elif cmp -s "$dist/checksums.txt" "$tampered/checksums.txt"; then
    fail "tampering with checksums.txt changed nothing (test bug)"
  elif (cd "$tampered" && "$DEBIAN_MINISIGN" -Vm checksums.txt -P "$pub") >/dev/null 2>&1; then
    fail "a tampered checksums.txt still verifies"
  else
    pass "a tampered checksums.txt fails verification"
  fi

  # The binaries inside the archives, as users get them. darwin and windows
  # ones run nowhere here: their build info is what can be checked.
  local os arch bin size info
  for os in linux darwin windows; do
    for arch in amd64 arm64; do
      local x="$WORK/bin/${os}_$arch"
      mkdir -p "$x"
      if [ "$os" = windows ]; then
        unzip -q -o "$dist/flm_${v}_${os}_${arch}.zip" -d "$x" 2>/dev/null || true
        bin="$x/flm.exe"
      else
        tar -xzf "$dist/flm_${v}_${os}_${arch}.tar.gz" -C "$x" 2>/dev/null || true
        bin="$x/flm"
      fi
      if [ ! -f "$bin" ]; then
        fail "${os}/${arch}: no binary in the archive"
        continue
      fi
      size=$(stat -c %s "$bin")
      info=$(go version -m "$bin" 2>&1) || true
      local problems=()
      [ "$size" -ge "$BINARY_MIN_BYTES" ] && [ "$size" -le "$BINARY_MAX_BYTES" ] ||
        problems+=("size $size bytes outside $BINARY_MIN_BYTES..$BINARY_MAX_BYTES")
      grep -Eq $'^\tbuild\tCGO_ENABLED=0$' <<<"$info" || problems+=("CGO_ENABLED=0 missing")
      grep -Eq $'^\tbuild\tGOOS='"$os"'$' <<<"$info" || problems+=("GOOS≠$os")
      grep -Eq $'^\tbuild\tGOARCH='"$arch"'$' <<<"$info" || problems+=("GOARCH≠$arch")
      grep -Eq $'^\tbuild\t-trimpath=true$' <<<"$info" || problems+=("not -trimpath")
      grep -Fq $'\tmod\tgithub.com/unjuno/flm/cli\t'"$modv" <<<"$info" ||
        problems+=("main module is not github.com/unjuno/flm/cli $modv")
      grep -Eq $'^\tdep\tgithub.com/unjuno/flm/core\t'"$(printf '%s' "$CORE_VERSION" | sed 's/[()]/\\&/g')"'([[:space:]]|$)' <<<"$info" ||
        problems+=("core is not $CORE_VERSION")
      # (pure Go: a darwin or windows binary would need cgo for nothing else)
      if [ ${#problems[@]} -eq 0 ]; then
        pass "${os}/${arch}: $((size / 1024 / 1024)) MB, CGO_ENABLED=0, GOOS/GOARCH, cli $modv, core $CORE_VERSION (go version -m)"
      else
        fail "${os}/${arch}: ${problems[*]}"
        sed 's/^/      /' <<<"$info" | grep -E 'path|mod|github.com/unjuno|GOOS|GOARCH|CGO' | head -20
      fi
    done
  done

  # The archives carry the docs, the completions and the man page.
  local want=(flm README.md INSTALL_GUIDE.md SERVICE_GUIDE.md completions/flm.bash completions/_flm completions/flm.fish man/man1/flm.1.gz)
  check "the linux/amd64 and windows/amd64 archives hold ${want[*]/#flm/flm[.exe]}" \
    bash -c 'for f in "${@:3}"; do grep -qFx "$f" <(tar -tzf "$1") && grep -qFx "${f/#flm/flm.exe}" <(unzip -Z1 "$2") || { echo "missing $f"; exit 1; }; done' \
    _ "$dist/flm_${v}_linux_amd64.tar.gz" "$dist/flm_${v}_windows_amd64.zip" "${want[@]}"

  check_rpm "$dist"
}

# The .rpm cannot be installed here (Debian): its file list, owners and
# scripts are what can be checked.
check_rpm() {
  local dist=$1 rpmf="$1/flm-${RPM_VERSION}-1.x86_64.rpm" list scripts
  list=$(rpm -qplv "$rpmf" 2>&1) || true
  local want=(/usr/bin/flm /usr/lib/systemd/system/flm.service /usr/lib/sysusers.d/flm.conf /var/lib/flm
    /usr/share/bash-completion/completions/flm /usr/share/zsh/vendor-completions/_flm
    /usr/share/fish/vendor_completions.d/flm.fish /usr/share/man/man1/flm.1.gz) missing=() p
  for p in "${want[@]}"; do
    grep -Eq "[[:space:]]$p\$" <<<"$list" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    pass "rpm -qpl: the binary, unit, sysusers.d, data dir, completions, man page"
  else
    fail "rpm -qpl misses: ${missing[*]}"
    sed 's/^/      /' <<<"$list"
  fi
  check "rpm: /var/lib/flm is drwx------ flm flm" \
    grep -Eq '^drwx------ +[0-9]+ +flm +flm .* /var/lib/flm$' <<<"$list"
  scripts=$(rpm -qp --scripts "$rpmf" 2>&1) || true
  check "rpm --scripts: %pre creates user flm, %post the data dir, %preun stops the unit, %postun keeps data on erase" \
    bash -c 'grep -q "useradd --system" <<<"$1" && grep -q "install -d -m 0700 -o flm -g flm /var/lib/flm" <<<"$1" &&
      grep -q "systemctl disable --now flm.service" <<<"$1" && grep -q "^postuninstall scriptlet" <<<"$1" &&
      grep -q "\"\$1\" = purge" <<<"$1"' _ "$scripts"
}

# ============================================================================
# the .deb on this machine (root only)
# ============================================================================

deb_installed=""
service_pid=""
# stop_service: SIGTERM to runuser, which passes it on to flm and returns;
# flm then shuts down on its own. Waits up to 10 s for every process of user
# flm to end (only this run can have started any: check_deb refuses to run
# when the user existed before), then kills what is left, by pid. Returns 1
# if it had to.
stop_service() {
  local left="" pids i
  if [ -n "$service_pid" ]; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    service_pid=""
  fi
  getent passwd flm >/dev/null || return 0
  for i in $(seq 1 100); do
    left=$(pgrep -u flm || true)
    [ -n "$left" ] || return 0
    sleep 0.1
  done
  mapfile -t pids <<<"$left"
  echo "      still running as flm after 10 s: ${pids[*]} (killed)"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  return 1
}

cleanup_deb() {
  if [ -n "$deb_installed" ]; then
    stop_service || true
  fi
  if [ -n "$deb_installed" ]; then
    dpkg -P flm >/dev/null 2>&1 || echo "package.sh: cleanup: dpkg -P flm failed" >&2
    deb_installed=""
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# unit_env UNIT: the NAME=VALUE words of the unit's Environment= lines, one
# per line (quotes removed as systemd does).
unit_env() {
  local line
  sed -n 's/^Environment=//p' "$1" | while IFS= read -r line; do
    xargs -n1 <<<"$line"
  done
}

check_deb() {
  local dist=$1 deb="$1/flm_${DEB_VERSION}_amd64.deb"
  step "the amd64 .deb on this machine"
  if [ "$(id -u)" != 0 ]; then
    if [ "${CI:-}" = true ]; then
      fail "the .deb checks need root (CI=true)"
    else
      echo "SKIP  the .deb checks need root (not root, CI unset): dpkg -i, flm version, /health as user flm, dpkg -r/-P"
    fi
    return 0
  fi
  if dpkg-query -W -f='${Status}' flm 2>/dev/null | grep -q installed || getent passwd flm >/dev/null ||
    [ -e /var/lib/flm ]; then
    fail "a package flm, a user flm or /var/lib/flm already exists here: not touching them (remove them first)"
    return 0
  fi
  if [ "$(dpkg --print-architecture)" != amd64 ]; then
    fail "this machine is $(dpkg --print-architecture), the check installs the amd64 .deb"
    return 0
  fi

  deb_installed=1
  check "dpkg -i $(basename "$deb")" dpkg -i "$deb"

  # flm as a user without Go would run it.
  local out
  out=$(env -i PATH=/usr/bin:/bin HOME=/nonexistent /usr/bin/flm version 2>&1) || true
  local want problems=() name ver
  [ "$(jq -r .data.flm <<<"$out" 2>/dev/null)" = "v$FLM_VERSION" ] || problems+=("flm ≠ v$FLM_VERSION")
  while read -r name ver; do
    want=$ver
    [ "$MODE" = snapshot ] && want="(devel)"
    [ "$(jq -r --arg m "$name" '.data.modules[$m]' <<<"$out" 2>/dev/null)" = "$want" ] || problems+=("$name ≠ $want")
  done < <(released_modules)
  if [ ${#problems[@]} -eq 0 ]; then
    pass "flm version (no Go on PATH): flm v$FLM_VERSION, $(jq -r '.data.modules | to_entries | map(.key + " " + .value) | join(", ")' <<<"$out")"
  else
    fail "flm version: ${problems[*]}"
    sed 's/^/      /' <<<"$out"
  fi

  check "user flm: system account, home /var/lib/flm, nologin shell" \
    bash -c 'e=$(getent passwd flm) && [ "$(cut -d: -f3 <<<"$e")" -lt 1000 ] &&
      [ "$(cut -d: -f6 <<<"$e")" = /var/lib/flm ] && [[ "$(cut -d: -f7 <<<"$e")" == */nologin ]]'
  check "/var/lib/flm is flm:flm 0700" bash -c '[ "$(stat -c "%U:%G %a" /var/lib/flm)" = "flm:flm 700" ]'
  check "man -w flm finds /usr/share/man/man1/flm.1.gz" bash -c '[ "$(man -w flm)" = /usr/share/man/man1/flm.1.gz ]'
  check "man flm renders" bash -c 'MANPAGER=cat man flm 2>&1 | grep -q .'
  check "bash completion: /usr/share/bash-completion/completions/flm loads and completes 'flm ver'" \
    bash -c 'source /usr/share/bash-completion/completions/flm && COMP_WORDS=(flm ver) COMP_CWORD=1 &&
      _flm flm ver flm && [[ " ${COMPREPLY[*]} " == *" version "* ]]'
  check "zsh and fish completion files present" \
    test -s /usr/share/zsh/vendor-completions/_flm -a -s /usr/share/fish/vendor_completions.d/flm.fish

  local unit=/usr/lib/systemd/system/flm.service
  if [ "$(cat /proc/1/comm)" != systemd ]; then
    echo "NOTE  PID 1 is '$(cat /proc/1/comm)', not systemd: systemd-analyze verify checks the unit file, and the"
    echo "      unit's ExecStart is run below as its user (what systemd would do)"
  fi
  # verify exits 0 on a setting it cannot parse ("…, ignoring"): any output
  # is a failure too.
  check "systemd-analyze verify $unit: exit 0, no warning" \
    bash -c 'out=$(systemd-analyze verify "$1" 2>&1) && [ -z "$out" ] || { echo "$out"; exit 1; }' _ "$unit"
  check "the unit runs as User=flm" grep -qx 'User=flm' "$unit"

  # The unit's command line, as its user, with its environment and no Go.
  local exec port envs=()
  exec=$(sed -n 's/^ExecStart=[-@:+!]*//p' "$unit" | head -1)
  mapfile -t envs < <(unit_env "$unit")
  port=$(free_port)
  local cmd=()
  read -r -a cmd <<<"$exec"
  local i has_port=""
  for i in "${!cmd[@]}"; do
    if [ "${cmd[i]}" = --port ]; then cmd[i + 1]=$port has_port=1; fi
    if [[ "${cmd[i]}" == --port=* ]]; then cmd[i]="--port=$port" has_port=1; fi
  done
  [ -n "$has_port" ] || cmd+=(--port "$port")
  echo "      runuser -u flm -- env -i PATH=/usr/bin:/bin ${envs[*]} ${cmd[*]}"
  runuser -u flm -- env -i PATH=/usr/bin:/bin "${envs[@]}" "${cmd[@]}" >"$WORK/service.log" 2>&1 &
  service_pid=$!
  local body="" code=""
  for i in $(seq 1 100); do
    if ! kill -0 "$service_pid" 2>/dev/null; then break; fi
    code=$(curl -s -o "$WORK/health.json" -w '%{http_code}' "http://127.0.0.1:$port/health" 2>/dev/null) || true
    if [ "$code" = 200 ]; then
      body=$(cat "$WORK/health.json")
      break
    fi
    sleep 0.2
  done
  if [ "$code" = 200 ] && [ "$(jq -c . <<<"$body" 2>/dev/null)" = '{"status":"ok"}' ]; then
    pass "the unit's ExecStart as user flm answers GET /health 200 {\"status\":\"ok\"}"
  else
    fail "the unit's ExecStart as user flm: /health answered ${code:-nothing} ${body}"
    sed 's/^/      /' "$WORK/service.log" | tail -n 20
  fi
  local t0=$SECONDS
  if stop_service; then
    pass "SIGTERM stops the service within $((SECONDS - t0)) s; no process of user flm left"
  else
    fail "the service did not stop within 10 s of SIGTERM"
  fi
  check "the service wrote its data to /var/lib/flm only (owned by flm)" \
    bash -c '[ -n "$(ls -A /var/lib/flm)" ] && [ -z "$(find /var/lib/flm ! -user flm)" ]'

  check "dpkg -r flm" dpkg -r flm
  check "after dpkg -r: /usr/bin/flm and the unit are gone" \
    bash -c '[ ! -e /usr/bin/flm ] && [ ! -e /usr/lib/systemd/system/flm.service ]'
  check "after dpkg -r: /var/lib/flm (with its data) and the user flm stay" \
    bash -c '[ -n "$(ls -A /var/lib/flm)" ] && getent passwd flm >/dev/null'
  check "dpkg -P flm" dpkg -P flm
  deb_installed=""
  check "after dpkg -P: /var/lib/flm, the user and the group flm are gone" \
    bash -c '[ ! -e /var/lib/flm ] && ! getent passwd flm >/dev/null && ! getent group flm >/dev/null'
}

# ============================================================================
# the subcommands
# ============================================================================

WORK=""
cleanup() {
  cleanup_deb
  if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}

new_key() {
  MINISIGN_PUB="$WORK/minisign.pub"
  export MINISIGN_KEY="$WORK/minisign.key"
  "$GOBIN_DIR/minisign" -G -W -p "$MINISIGN_PUB" -s "$MINISIGN_KEY" >/dev/null
}

summary() {
  step "summary"
  echo "$passed passed, $failed failed"
  if [ "$failed" -ne 0 ]; then exit 1; fi
}

cmd_snapshot() {
  install
  WORK=$(mktemp -d)
  trap cleanup EXIT
  trap 'exit 130' INT TERM # so that the EXIT trap runs
  MODE=snapshot
  new_key
  go build -o "$WORK/release" ./tools/release
  RELEASE=("$WORK/release" -root "$ROOT")
  FLM_VERSION=$(module_version github.com/unjuno/flm/cli)
  FLM_VERSION=${FLM_VERSION#v}
  if ! git remote get-url origin >/dev/null 2>&1; then
    echo "NOTE  this checkout has no git remote 'origin': goreleaser then reads no git state at all, and"
    echo "      the snapshot is 0.0.0-SNAPSHOT-none (a clone of the real repository has one)"
  fi
  step "goreleaser release --snapshot --clean (workspace build)"
  local t0=$SECONDS
  # The version goreleaser derives from `git describe` would be a module
  # tag (core/v1.0.0); the product version is cli's.
  GORELEASER_CURRENT_TAG="v$FLM_VERSION" goreleaser release --snapshot --clean
  echo "goreleaser: $((SECONDS - t0)) s"
  local v
  v=$(jq -r .version dist/metadata.json)
  CORE_VERSION="(devel)"
  check_artifacts "$ROOT/dist" "$v" "(devel)"
  summary
}

cmd_check() {
  [ $# -eq 1 ] || die "usage: package.sh check OUT (what tools/scripts/boundary.sh OUT made)"
  local out
  out=$(realpath "$1")
  [ -d "$out/repo/.git" ] && [ -d "$out/proxy" ] ||
    die "$out/repo (a git clone) and $out/proxy (a file GOPROXY) are needed: run tools/scripts/boundary.sh $out first"
  install
  WORK=$(mktemp -d)
  trap cleanup EXIT
  trap 'exit 130' INT TERM # so that the EXIT trap runs
  MODE=release
  new_key

  # The real module cache's download dir serves third-party modules without
  # network; the FLM modules come only from the file proxy, into a temp cache.
  local real_cache
  real_cache=$(go env GOMODCACHE)
  export GOMODCACHE="$out/modcache" GOFLAGS=-modcacherw GONOSUMDB=github.com/unjuno/flm
  # OUT/modcache changes under the same paths between runs: no module index
  # (see boundary.sh).
  export GODEBUG="${GODEBUG:+$GODEBUG,}goindex=0"
  export GOPROXY="file://$out/proxy,file://$real_cache/cache/download,https://proxy.golang.org"
  unset GOWORK GOPRIVATE GONOPROXY
  mkdir -p "$GOMODCACHE"

  cd "$out/repo"
  RELEASE=("$out/bin/release" -root "$out/repo")
  FLM_VERSION=$(module_version github.com/unjuno/flm/cli)
  FLM_VERSION=${FLM_VERSION#v} # 1.0.0: the product version, as in flm_1.0.0_amd64.deb
  CORE_VERSION=$(module_version github.com/unjuno/flm/core)
  git remote get-url origin >/dev/null 2>&1 || die "$out/repo has no git remote 'origin' (goreleaser needs one)"

  step "goreleaser release --clean --skip=publish,validate,announce (v$FLM_VERSION from the file proxy)"
  local t0=$SECONDS
  GORELEASER_CURRENT_TAG="v$FLM_VERSION" goreleaser release --clean --skip=publish,validate,announce
  echo "goreleaser: $((SECONDS - t0)) s"
  check_artifacts "$out/repo/dist" "$FLM_VERSION" "v$FLM_VERSION"
  t0=$SECONDS
  check_deb "$out/repo/dist"
  echo ".deb checks: $((SECONDS - t0)) s"
  summary
}

case "${1:-}" in
install) install ;;
snapshot) cmd_snapshot ;;
check)
  shift
  cmd_check "$@"
  ;;
*) die "usage: package.sh install | snapshot | check OUT" ;;
esac
