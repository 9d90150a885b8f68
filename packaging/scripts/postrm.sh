#!/bin/sh
# flm package: after removing the files (deb postrm, rpm %postun).
#
# Removing the package (dpkg -r, apt remove, rpm -e) keeps the data directory
# /var/lib/flm (API key hashes, the encrypted security.db and its key file,
# certificates) and the user flm, so a reinstall finds everything again.
# Only a Debian purge (dpkg -P, apt purge) deletes both. RPM has no purge:
# rpm -e keeps them (docs/guides/INSTALL_GUIDE.md says how to delete them).
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

if [ "$1" = purge ]; then
	rm -rf /var/lib/flm
	if getent passwd flm >/dev/null; then
		userdel flm
	fi
	if getent group flm >/dev/null; then
		groupdel flm
	fi
fi
exit 0
