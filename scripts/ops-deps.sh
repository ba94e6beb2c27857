#!/usr/bin/env bash
# Installs what the deployment tests (crates/server/tests/it/deploy.rs) need:
# Debian's nginx (run by the tests as a child on loopback ports, never as the
# system service) and systemd's systemd-analyze (to verify the unit file).
# Idempotent: installs only what is missing. Needs root (or sudo) to install.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ -x /usr/bin/nextcloud-spreed-signaling-server ] || missing+=(nextcloud-spreed-signaling)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "ops-deps: nginx, systemd-analyze and nextcloud-spreed-signaling present" >&2
else
    echo "ops-deps: installing ${missing[*]} (apt)" >&2
    as_root apt-get update -qq >&2
    # The package scripts must not start nginx as a service: the tests run their own.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 0755 /usr/sbin/policy-rc.d
        trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
(nginx -v || /usr/sbin/nginx -v) 2>&1 | sed 's/^/ops-deps: /' >&2
systemd-analyze --version | head -n1 | sed 's/^/ops-deps: /' >&2
