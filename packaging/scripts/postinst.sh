#!/bin/sh
# flm package: after unpacking (deb postinst configure, rpm %post 1|2).
# Makes sure the system service's data directory exists with owner flm and
# mode 0700 (security.db, its key file and the TLS keys live there), and lets
# a running systemd see the new or changed unit. The service is not enabled
# or started: the administrator does that (`systemctl enable --now flm`)
# after choosing its settings. An upgrade restarts it if it was running.
set -e

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

install -d -m 0700 -o flm -g flm /var/lib/flm

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# deb: "configure <old-version>" on upgrade; rpm: %post 2 on upgrade.
	if [ -n "$2" ] || [ "$1" = 2 ]; then
		systemctl try-restart flm.service >/dev/null 2>&1 || true
	fi
fi
exit 0
