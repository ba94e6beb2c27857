#!/usr/bin/env bash
# Installs what the browser and Node client tests under tests/node need: Debian's chromium
# (driven through Playwright with its executablePath, since browser downloads are not
# possible here) and the npm packages of tests/node. Idempotent, and a no-op while
# tests/node does not exist.
#
# Prints the chromium path as its last line (empty when there is no tests/node).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
node_dir="$root/tests/node"

if [ ! -d "$node_dir" ]; then
    echo "node-deps: $node_dir does not exist; nothing to install" >&2
    echo ""
    exit 0
fi

# Run privileged commands directly as root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

chromium="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$chromium" ]; then
    echo "node-deps: installing chromium (apt)" >&2
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium >&2
    chromium="$(command -v chromium)"
else
    echo "node-deps: chromium present: $chromium" >&2
fi
"$chromium" --version >&2 || true

command -v node >/dev/null || { echo "node-deps: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "node-deps: npm is not installed" >&2; exit 1; }

# Playwright must use the Debian chromium, never download a browser build of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
if [ -f "$node_dir/package.json" ]; then
    if [ -f "$node_dir/package-lock.json" ]; then
        # A lockfile: install exactly it, and never rewrite it (it is tracked).
        stamp="$node_dir/node_modules/.switchboard-lock.sha256"
        want="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
        if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
            echo "node-deps: $node_dir/node_modules matches package-lock.json" >&2
        else
            echo "node-deps: npm ci in $node_dir ($(node --version))" >&2
            (cd "$node_dir" && npm ci --no-progress >&2)
            echo "$want" >"$stamp"
        fi
    else
        echo "node-deps: npm install in $node_dir (no package-lock.json; consider committing one)" >&2
        (cd "$node_dir" && npm install --no-progress --no-save --package-lock=false >&2)
    fi
else
    echo "node-deps: $node_dir has no package.json; no npm packages to install" >&2
fi

echo "$chromium"
