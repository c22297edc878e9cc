#!/usr/bin/env bash
# The quick benches (`make bench-quick`): every bench/*.py with --quick, BENCH_JOBS at a time
# (default 2). Each bench's lines are printed whole when it ends, under its name and time;
# the run fails when one bench fails (its own exit status), after all have run.
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
jobs=${BENCH_JOBS:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

one() {  # one bench: its output kept, then printed at once (under a lock)
    local bench=$1 log start status
    log="$out/$(basename "$bench").log"
    start=$(date +%s)
    "$python" "$bench" --quick >"$log" 2>&1
    status=$?
    {
        flock 9
        echo "== $bench --quick ($(( $(date +%s) - start )) s, exit $status)"
        cat "$log"
    } 9>"$out/lock"
    [ "$status" -eq 0 ] || touch "$out/failed"
}
export -f one
export python out

# the longest first, so that two at a time end together
ls bench/[!_]*.py | sort -t/ -k2 | awk '
    /soak|help|backlog|ci\.py|hostile|mesh|monitor|repo|restarts|bridge|partition|page/ {print 0, $0; next}
    {print 1, $0}' | sort -s -k1,1n | cut -d" " -f2 |
    xargs -P "$jobs" -I{} bash -c 'one "$1"' _ {}
if [ -e "$out/failed" ]; then
    echo "a quick bench failed (its lines above)" >&2
    exit 1
fi
