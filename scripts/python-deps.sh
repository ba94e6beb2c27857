#!/usr/bin/env bash
# Installs the Python packages the integration tests need (scripts/requirements-test.txt)
# into a virtualenv at ${CARGO_TARGET_DIR:-target}/pyvenv. Idempotent: does nothing when
# the venv already has every pinned package at its pinned version.
#
# Prints the venv's interpreter path as its last line, so callers may do
#   export SWITCHBOARD_PYTHON="$(bash scripts/python-deps.sh | tail -n1)"
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
venv="${SWITCHBOARD_PYVENV:-$target/pyvenv}"
requirements="$root/scripts/requirements-test.txt"
base_python="${PYTHON:-python3}"

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1

# True when $1 (an interpreter) has every "name==version" pin of the requirements file.
satisfied() {
    "$1" - "$requirements" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = version(name.strip())
    except PackageNotFoundError:
        sys.exit(1)
    if want and have != want.strip():
        sys.exit(1)
PY
}

if [ -x "$venv/bin/python" ] && satisfied "$venv/bin/python"; then
    echo "python-deps: $venv is up to date ($(grep -v '^#' "$requirements" | xargs))" >&2
    echo "$venv/bin/python"
    exit 0
fi

echo "python-deps: creating $venv with $("$base_python" --version 2>&1)" >&2
mkdir -p "$(dirname "$venv")"
if "$base_python" -m venv --clear "$venv" >&2; then
    "$venv/bin/python" -m pip install --quiet -r "$requirements" >&2
    satisfied "$venv/bin/python" || { echo "python-deps: install into $venv did not take" >&2; exit 1; }
    echo "python-deps: installed into $venv: $(grep -v '^#' "$requirements" | xargs)" >&2
    echo "$venv/bin/python"
else
    # No venv module (e.g. a Debian python without python3-venv): fall back to the user site.
    echo "python-deps: '$base_python -m venv' failed; installing into the user site instead" >&2
    rm -rf "$venv"
    "$base_python" -m pip install --quiet --user -r "$requirements" >&2
    satisfied "$base_python" || { echo "python-deps: user-site install did not take" >&2; exit 1; }
    command -v "$base_python"
fi
