#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (`chromium`, `chromium-driver`) when either is
# missing, for the real-browser console test (tests/browser.rs). Idempotent; run as root, or with
# sudo available. `apt-get update` runs only when the package lists do not offer the packages or
# are too old to download them.
set -euo pipefail
packages=(chromium chromium-driver)

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    for package in "${packages[@]}"; do
        if ! apt-cache policy "$package" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            "${sudo[@]}" apt-get update -qq
            break
        fi
    done
    install_packages() {
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    }
    # Lists too old for the mirror (a superseded security update) fail the download: refresh once.
    install_packages || { "${sudo[@]}" apt-get update -qq && install_packages; }
fi
chromium --version 2>/dev/null  # its launcher script warns about a memory check on stderr
chromedriver --version
