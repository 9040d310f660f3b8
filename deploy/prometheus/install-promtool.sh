#!/usr/bin/env bash
# Installs promtool (Debian's `prometheus` package) when it is missing, for the alert-rule tests
# (tests/alerts.rs). Run as root, or with sudo available.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends prometheus
promtool --version
