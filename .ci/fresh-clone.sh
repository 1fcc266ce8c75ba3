#!/usr/bin/env bash
# The newcomer's story, end to end: clone the committed HEAD into a temporary folder,
# `make serve` there (installing and building everything from nothing but the shared
# pip cache), wait for /readyz, score one event, stop. Prints how long each step took.
#
#   FRESH_CLONE_READY_SECONDS  longest wait for /readyz, build included (default 1500)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
ready_limit=${FRESH_CLONE_READY_SECONDS:-1500}
python=${PYTHON:-python3}

work=$(mktemp -d)
serve_pid=
stop() {
    if [[ -n $serve_pid ]] && kill -0 "$serve_pid" 2>/dev/null; then
        # make and the server share the process group setsid gave them.
        kill -TERM -- "-$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop EXIT

started=$SECONDS
git clone --quiet "$repo" "$work/login-scorer"
cd "$work/login-scorer"
echo "fresh clone of $(git rev-parse --short HEAD) in $work/login-scorer"

# A fresh build is the point: no target/ or .venv from the checkout.
unset CARGO_TARGET_DIR ORT_DYLIB_PATH LOGIN_SCORER_ORT_DYLIB_PATH
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0));
print(s.getsockname()[1])')
base=http://127.0.0.1:$port

setsid make serve LISTEN="127.0.0.1:$port" >"$work/serve.log" 2>&1 &
serve_pid=$!

ready=
while (( SECONDS - started < ready_limit )); do
    if curl --silent --fail --max-time 1 "$base/readyz" >/dev/null; then
        ready=yes
        break
    fi
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 1
done
if [[ -z $ready ]]; then
    echo "make serve in a fresh clone was not ready on $base after $((SECONDS - started)) s:" >&2
    tail -n 40 "$work/serve.log" >&2
    exit 1
fi
echo "make serve in a fresh clone: ready after $((SECONDS - started)) s (clone, venv, build)"

# Row 15 of the real RBA sample, as in README.md.
event='{"timestamp": "2020-02-03 12:44:30.475", "user_id": "-8296667206273764769",
  "round_trip_time_ms": 1123.0, "ip_address": "82.147.58.93", "country": "NO",
  "region": "Oslo County", "city": "Oslo", "asn": 29492,
  "browser_name_and_version": "Android 2.3.3.2672", "os_name_and_version": "iOS 7.1",
  "device_type": "mobile", "login_successful": true, "is_attack_ip": false}'
answer=$(curl --silent --show-error --fail --max-time 10 "$base/v1/score" \
    -H 'content-type: application/json' -d "$event")
echo "scored one event: $answer"
"$python" -c 'import json, sys; a = json.loads(sys.argv[1]);
assert a["action"] in ("allow", "challenge", "deny") and a["score"] >= 0, a' "$answer"
echo "fresh clone: served and scored in $((SECONDS - started)) s"
