#!/usr/bin/env bash
# Schemathesis (PyPI), pinned, in its own venv under the user cache, for tests/schemathesis.rs.
# Idempotent: pip runs only when the venv lacks this exact version. Prints the `st` path.
set -euo pipefail

VERSION=4.32.5
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/tallyfy-bridge/schemathesis"

installed() {
    [ -x "$VENV/bin/st" ] &&
        [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" = "$VERSION" ]
}

if ! installed; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi
installed || { echo "schemathesis $VERSION did not install into $VENV" >&2; exit 1; }
echo "$VENV/bin/st"
