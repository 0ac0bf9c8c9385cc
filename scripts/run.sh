#!/usr/bin/env bash
# Run Outcome Ledger: API + workers (+ a private redis-server under ./var when REDIS_URL is unset).
# Ctrl-C stops the whole process tree.
source "$(dirname "$0")/env.sh" test
exec outcomes run "$@"
