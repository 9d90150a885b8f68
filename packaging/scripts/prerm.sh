#!/bin/sh
# flm package: before removing the files (deb prerm remove, rpm %preun 0).
# Stops and disables the system service when the package goes away (not on
# an upgrade, where postinst restarts it). Does nothing where systemd is not
# running (containers, chroots).
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl disable --now flm.service >/dev/null 2>&1 || true
fi
exit 0
