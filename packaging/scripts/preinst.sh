#!/bin/sh
# flm package: before unpacking (deb preinst install|upgrade, rpm %pre 1|2).
# Creates the system user and group flm that the system service runs as.
# Its home is the service's data directory, /var/lib/flm; it cannot log in.
set -e

nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin

if ! getent group flm >/dev/null; then
	groupadd --system flm
fi
if ! getent passwd flm >/dev/null; then
	useradd --system --gid flm --home-dir /var/lib/flm --no-create-home \
		--shell "$nologin" --comment "FLM gateway" flm
fi
exit 0
