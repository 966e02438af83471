#!/usr/bin/env bash
# Builds nothing (make demo did): starts the example daemon, attaches lsan
# to it, and shows the leak it finds within a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
daemon=examples/bin/daemon
[ -x "$daemon" ] || { echo "demo: $daemon missing: run make demo" >&2; exit 1; }

LSAN_EXAMPLE_DAEMON=1 LSAN_EXAMPLE_REQUESTS=0 "$daemon" </dev/null >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 0.5
echo "demo: example daemon running as pid $pid; attaching lsan for two checks, 3 s apart" >&2
status=0
./bin/lsan -p "$pid" -i 3s -n 2 || status=$?
echo "demo: lsan exited with status $status (23: leaks found)" >&2
