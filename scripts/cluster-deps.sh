#!/usr/bin/env bash
# Installs what the cluster tests need: Debian's nats-server, which the tests run as
# children on dynamic loopback ports (never the system service). PostgreSQL is part of
# the machine image. Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
    echo "cluster-deps: nats-server present" >&2
else
    echo "cluster-deps: installing nats-server (apt)" >&2
    as_root apt-get update -qq >&2
    # The package must not start its own service: the tests run their own servers.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 0755 /usr/sbin/policy-rc.d
        trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends nats-server >&2
fi
(nats-server --version || /usr/sbin/nats-server --version) 2>&1 | sed 's/^/cluster-deps: /' >&2
