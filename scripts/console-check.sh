#!/usr/bin/env bash
# console-check.sh: the operator console's browser tests (tests/console) in
# a real headless Chromium, driven by chromedriver:
#
#   scripts/console-check.sh [test name filter]
#
# runs `cargo test --test console -- --ignored` (those tests are ignored by
# a plain `cargo test`, which may have no browser). When `chromedriver` or
# `chromium` is missing, Debian's chromium-driver and chromium are
# installed with apt (as root or with passwordless sudo). Exit 77 (SKIP)
# only when they are missing and cannot be installed; a failing test fails.
# Needs, as the tests do: MariaDB and RabbitMQ (`scripts/dev services`
# brings them up) and `rabbitmqctl`. CONSOLE_SCREENSHOTS=<dir> keeps the
# tests' screenshots there; CHROMEDRIVER, CHROME_BIN and WEBDRIVER_URL are
# read by the tests (tests/console/browser.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== console-check: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi
}

browser_installed() { command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; }

if ! browser_installed; then
    log "installing chromium and chromium-driver"
    if ! command -v apt-get >/dev/null 2>&1 ||
        ! as_root apt-get update -qq ||
        ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium chromium-driver >/dev/null ||
        ! browser_installed; then
        echo "console-check: SKIP: no chromedriver/chromium, and Debian's chromium-driver could not be installed (needs apt and root or passwordless sudo)" >&2
        exit 77
    fi
fi
log "$(chromium --version 2>/dev/null | head -n 1); $(chromedriver --version | head -n 1 | cut -d' ' -f1-2)"

scripts/dev services
log "cargo test --test console -- --ignored $*"
exec cargo test --test console -- --ignored "$@"
