#!/usr/bin/env bash
# setup.sh installs what the benchmark harness needs and is idempotent:
#   - fortio (load generator and echo server) into bench/.tools/bin
#   - HAProxy and nginx (reference proxies) from Debian packages when missing
# It never starts the system services: the harness runs its own instances on
# loopback with configs from bench/haproxy and bench/nginx.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/.tools/bin"
FORTIO_VERSION="${FORTIO_VERSION:-v1.68.2}"
mkdir -p "$tools"

if [ ! -x "$tools/fortio" ] || ! "$tools/fortio" version 2>/dev/null | grep -q "${FORTIO_VERSION#v}"; then
	echo "setup: installing fortio $FORTIO_VERSION into $tools"
	GOBIN="$tools" go install "fortio.org/fortio@$FORTIO_VERSION"
fi

missing=()
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
		echo "setup: need root (or sudo) to install ${missing[*]}; those scenarios will be skipped" >&2
		exit 0
	fi
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO=sudo
	echo "setup: installing ${missing[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	# policy-rc.d keeps the packages from starting system-wide services on :80.
	$SUDO apt-get update -qq || echo "setup: apt-get update failed; trying install anyway" >&2
	$SUDO env RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
		echo "setup: apt-get install ${missing[*]} failed; those scenarios will be skipped" >&2
	# Debian's postinst may start the services; stop them, the harness runs its own.
	for svc in "${missing[@]}"; do
		if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
	done
fi
echo "setup: done"
