#!/usr/bin/env bash
# Checks the running server against openapi.yaml with schemathesis: no 5xx, and every
# status, content type, header and body as documented. Run by `make test-contract`.
#
#   BINARY        the login-scorer binary to start (make passes the debug build)
#   SCHEMATHESIS  the schemathesis executable
#   PYTHON        finds a free port (python3)
#   CONTRACT_MAX_EXAMPLES, CONTRACT_MAX_SECONDS, CONTRACT_SEED  bound and pin the run
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

binary=$(realpath "${BINARY:-target/debug/login-scorer}")
schemathesis=$(realpath "${SCHEMATHESIS:-.venv/bin/schemathesis}")
max_examples=${CONTRACT_MAX_EXAMPLES:-25}
max_seconds=${CONTRACT_MAX_SECONDS:-60}
seed=${CONTRACT_SEED:-20261203}
python=${PYTHON:-python3}

work=$(mktemp -d)
server_pid=
stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" || true
    fi
    rm -rf "$work"
}
trap stop_server EXIT

# NOTE: a free port is found by binding port 0 and closing it; another process could
# take it before the server binds, in which case the server exits and the wait below
# reports its log.
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0));
print(s.getsockname()[1])')
base=http://127.0.0.1:$port
token=contract-$RANDOM$RANDOM

# The admin token lets schemathesis reach /admin/reload's 200 (nothing new: unchanged).
"$binary" serve --listen "127.0.0.1:$port" --model-root artifacts/rba-autoencoder \
    --admin-token "$token" --watch false >"$work/server.log" 2>&1 &
server_pid=$!

ready=
for _ in $(seq 300); do
    if curl --silent --fail --max-time 1 "$base/readyz" >/dev/null; then
        ready=yes
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $ready ]]; then
    echo "login-scorer did not become ready on $base within 30 s; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_schema_conformance,response_headers_conformance,unsupported_method

# Run from the temporary folder: schemathesis and hypothesis keep caches in the cwd.
# NOTE: one worker: with two, hypothesis threads hit a CPython 3.11 "AST constructor
# recursion depth mismatch" SystemError now and then.
cd "$work"
"$schemathesis" run "$repo/openapi.yaml" --url "$base" \
    --checks "$checks" \
    --header "Authorization: Bearer $token" \
    --max-examples "$max_examples" --max-time "$max_seconds" --seed "$seed" \
    --workers 1 --no-color
