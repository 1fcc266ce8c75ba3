#!/usr/bin/env bash
# Compares, on this machine and with the same load generator, events and
# connection count: (a) login-scorer POST /v1/score, (b) the HTTP floor
# (benches/floor.rs: parse the event, fixed answer, no scoring) and (c) the
# Python peer (benches/peers/fastapi_scorer.py). Each server runs alone on
# 127.0.0.1 at a free port; results are appended to BENCHMARKS.md.
#
# Run with `make bench-compare`, or directly from the repository root:
#   EVENTS=data/generated/rba-2000000.csv.gz bash benches/compare.sh
#
# Two passes: closed loop (throughput), then open loop at one fixed offered
# rate every server sustains (latency without coordinated omission). RATE
# unset picks half the lowest closed-loop throughput.

set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_ROOT=${MODEL_ROOT:-artifacts/rba-autoencoder}
EVENTS=${EVENTS:-data/generated/rba-2000000.csv.gz}
EVENT_LIMIT=${EVENT_LIMIT:-10000}
CONNECTIONS=${CONNECTIONS:-64}
DURATION_SECS=${DURATION_SECS:-15}
WARMUP_SECS=${WARMUP_SECS:-3}
LOAD_THREADS=${LOAD_THREADS:-1}
RATE=${RATE:-}
PY=${PY:-.venv/bin/python}
RESULTS=${RESULTS:-BENCHMARKS.md}
BENCH_NOTE=${BENCH_NOTE:-}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OPEN_LOOP_ATTEMPTS=${OPEN_LOOP_ATTEMPTS:-2}
READY_TIMEOUT_SECS=60
STOP_TIMEOUT_SECS=20
if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
    ORT_DYLIB_PATH=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1)
    export ORT_DYLIB_PATH
fi

log() { printf '%s compare: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -f "$EVENTS" ]] || die "no events file $EVENTS (make data)"
[[ -d "$MODEL_ROOT" ]] || die "no model root $MODEL_ROOT (make train)"
[[ -x "$PY" ]] || die "no Python at $PY (make setup)"

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local waited=0
    while kill -0 "$SERVER_PID" 2>/dev/null && ((waited < STOP_TIMEOUT_SECS * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        log "server $SERVER_PID ignored SIGTERM for ${STOP_TIMEOUT_SECS}s; killing it"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
trap 'stop_server; rm -rf "$WORK"' EXIT

log "building login-scorer and the bench binaries (release)"
cargo build --release --locked --bin login-scorer >&2
cargo bench --locked --no-run --bench load --bench floor --message-format=json \
    >"$WORK/cargo.json"
bench_executable() {
    "$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message["target"]["name"] == sys.argv[2]:
        if message.get("executable"):
            print(message["executable"])
' "$WORK/cargo.json" "$1" | tail -n 1
}
LOAD_BIN=$(bench_executable load)
FLOOR_BIN=$(bench_executable floor)
[[ -x "$LOAD_BIN" && -x "$FLOOR_BIN" ]] || die "bench binaries not found in cargo output"

log "checking that the Python peer reproduces the bundle's golden rows"
"$PY" benches/peers/fastapi_scorer.py check-golden --model-root "$MODEL_ROOT" >&2

# NOTE: the port is free when asked; another process could take it before the
# server binds it, in which case the server fails to start and the run stops.
free_port() {
    "$PY" -c '
import socket
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    print(probe.getsockname()[1])'
}

# start_server NAME ADDR: starts one server in the background, then polls
# GET /readyz until it answers, the process dies or the timeout passes.
start_server() {
    local name=$1 addr=$2
    case "$name" in
        login-scorer)
            "$TARGET_DIR/release/login-scorer" serve --listen "$addr" --model-root "$MODEL_ROOT" \
                >"$WORK/$name.log" 2>&1 &
            ;;
        floor)
            "$FLOOR_BIN" --listen "$addr" --response-file "$WORK/answer.json" \
                >"$WORK/$name.log" 2>&1 &
            ;;
        fastapi)
            "$PY" benches/peers/fastapi_scorer.py serve --listen "$addr" \
                --model-root "$MODEL_ROOT" --workers "$(nproc)" >"$WORK/$name.log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    local tries=0
    until curl -sf -o /dev/null "http://$addr/readyz"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$WORK/$name.log" >&2
            die "$name exited before it was ready"
        fi
        tries=$((tries + 1))
        ((tries < READY_TIMEOUT_SECS * 10)) || die "$name not ready after ${READY_TIMEOUT_SECS}s"
        sleep 0.1
    done
    log "$name ready on $addr (pid $SERVER_PID)"
}

# measure NAME PASS [LOAD ARGS...]: one server, one load run, one JSON report.
measure() {
    local name=$1 pass=$2
    shift 2
    local addr="127.0.0.1:$(free_port)"
    start_server "$name" "$addr"
    "$LOAD_BIN" --url "http://$addr/v1/score" --events "$EVENTS" --event-limit "$EVENT_LIMIT" \
        --connections "$CONNECTIONS" --duration-secs "$DURATION_SECS" \
        --warmup-secs "$WARMUP_SECS" --threads "$LOAD_THREADS" --label "$name" \
        --json "$WORK/$name-$pass.json" "$@" >&2
    stop_server
}

# TODO: servers and generator share both cores, unpinned: on 2 cores, pinning
# the generator to one would leave each server (2 workers) a single core.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SERVERS=(login-scorer floor fastapi)

log "closed loop, $CONNECTIONS connections, ${DURATION_SECS}s each"
measure login-scorer closed --save-probe-response "$WORK/answer.json"
measure floor closed
measure fastapi closed

if [[ -z "$RATE" ]]; then
    RATE=$("$PY" -c '
import json, sys
lowest = min(json.load(open(p))["throughput_per_s"] for p in sys.argv[1:])
print(max(10, int(lowest / 2 // 10 * 10)))
' "$WORK/login-scorer-closed.json" "$WORK/floor-closed.json" "$WORK/fastapi-closed.json")
fi

# A server that falls behind (or a burst of other work on the machine) makes
# the rate unusable for comparing p99; halve it and try again, a bounded
# number of times.
for attempt in $(seq 1 "$OPEN_LOOP_ATTEMPTS"); do
    log "open loop at $RATE req/s (attempt $attempt of $OPEN_LOOP_ATTEMPTS)"
    for name in "${SERVERS[@]}"; do
        measure "$name" open --rate "$RATE"
    done
    if "$PY" benches/compare_report.py --work "$WORK" --check-sustained; then
        break
    fi
    if ((attempt < OPEN_LOOP_ATTEMPTS)); then
        RATE=$((RATE / 2 > 10 ? RATE / 2 : 10))
    fi
done

COMMAND="make bench-compare (benches/compare.sh: CONNECTIONS=$CONNECTIONS"
COMMAND+=" DURATION_SECS=$DURATION_SECS WARMUP_SECS=$WARMUP_SECS LOAD_THREADS=$LOAD_THREADS"
COMMAND+=" RATE=$RATE EVENTS=$EVENTS EVENT_LIMIT=$EVENT_LIMIT MODEL_ROOT=$MODEL_ROOT)"
"$PY" benches/compare_report.py --work "$WORK" --results "$RESULTS" \
    --command "$COMMAND" --load-before "$LOAD_BEFORE" --note "$BENCH_NOTE" \
    --python-workers "$(nproc)"
log "appended to $RESULTS"
