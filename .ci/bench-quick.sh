#!/usr/bin/env bash
# The quick benches (`make bench-quick`): every bench/*.py with --quick, those that wait on
# processes BENCH_JOBS at a time (default 2), then those that time the machine, alone. Each
# bench's lines are printed whole when it ends, under its name and time; the run fails when
# one bench fails (its own exit status), after all have run.
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

# Two phases. First the benches that mostly wait on agents, devhub and CLIs, BENCH_JOBS at
# a time, the longest first so that they end together; then, one at a time and alone, the
# ones that measure the machine itself (latency, throughput, memory), whose figures another
# bench beside them would blur.
ALONE="claim devhub devhub_conformance executors gateway gateway_account guardian
       guardian_cases hyperlog llm mesh sandbox webhook"
LONGEST="soak help backlog repo monitor page partition bridge ci restarts hostile"
rank() {
    local name i=0
    name=$(basename "$1" .py)
    for long in $LONGEST; do
        [ "$name" = "$long" ] && { echo "$i $1"; return; }
        i=$((i + 1))
    done
    echo "99 $1"
}
waiting=() alone=()
for bench in bench/[!_]*.py; do
    case " $(echo $ALONE) " in
        *" $(basename "$bench" .py) "*) alone+=("$bench") ;;
        *) waiting+=("$(rank "$bench")") ;;
    esac
done
printf '%s\n' "${waiting[@]}" | sort -s -n -k1,1 | cut -d" " -f2 |
    xargs -P "$jobs" -I{} bash -c 'one "$1"' _ {}
for bench in "${alone[@]}"; do
    one "$bench"
done
if [ -e "$out/failed" ]; then
    echo "a quick bench failed (its lines above)" >&2
    exit 1
fi
