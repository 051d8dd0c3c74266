#!/usr/bin/env bash
# API fuzzing: boots Clearance against a real redis-server and the test OpenID provider
# (tests/support/oidc, node), then runs schemathesis (PyPI, in a venv under target/) against
# the live OpenAPI document (GET /.clearance/api/v1/openapi.json) with an admin token. Fails
# when any answer is a 5xx (or otherwise breaks the checks below). Bounded: a few examples per
# operation and a time limit. Needs python3 (+ venv), redis-server and node: run
# scripts/install-test-deps.sh first. Keeps its logs in target/api-fuzz/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MAX_EXAMPLES="${API_FUZZ_MAX_EXAMPLES:-25}"
TIME_LIMIT="${API_FUZZ_TIME_LIMIT:-240}"
SCHEMATHESIS_VERSION="4.32.5"

log() { printf 'api-fuzz: %s\n' "$*"; }

work="target/api-fuzz"
rm -rf "$work"
mkdir -p "$work"
venv="target/api-fuzz-venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"
idp_port="$(free_port)"
gate_port="$(free_port)"
gate="http://127.0.0.1:$gate_port"
issuer="http://127.0.0.1:$idp_port"
admin_token="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

log "redis-server on $redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    >"$work/redis.log" 2>&1 &
pids+=($!)

cat >"$work/provider.json" <<JSON
{ "clients": [ { "client_id": "clearance", "client_secret": "clearance-secret",
                 "redirect_uris": ["$gate/oauth2/callback"],
                 "post_logout_redirect_uris": ["$gate/oauth2/signed_out"] } ],
  "accounts": {}, "keys_seed": "api-fuzz", "access_token_ttl": 60, "id_token_ttl": 60 }
JSON
log "OpenID provider at $issuer"
PORT="$idp_port" ISSUER="$issuer" CONFIG="$PWD/$work/provider.json" \
    node tests/support/oidc/provider.mjs >"$work/provider.log" 2>&1 &
pids+=($!)

cat >"$work/clearance.toml" <<TOML
[server]
listen = "127.0.0.1:$gate_port"
public_url = "$gate"
workers = 2
# The fuzzer calls forward-auth directly, as a proxy would.
trusted_proxies = ["127.0.0.1/32"]

[redis]
url = "redis://127.0.0.1:$redis_port/"
key_prefix = "fuzz:"

# The fuzzer is one client sending thousands of requests: rate limits would answer most of them
# with 429 and hide what the handlers do. Head limits stay on.
[limits]
api_per_minute = 0
sign_in_per_minute = 0

[oidc]
issuer = "$issuer"
client_id = "clearance"
client_secret = "clearance-secret"

[session]
cookie_secret = "YXBpLWZ1enotY29va2llLXNlY3JldC10aGF0LWlzLWxvbmctZW5vdWdoLWZvci1jbGVhcmFuY2U="
cookie_secure = false

[[admin.tokens]]
name = "api-fuzz"
sha256 = "$(sha "$admin_token")"

[[scim.tokens]]
name = "api-fuzz"
sha256 = "$(sha "$admin_token")"

[audit]
key = "api-fuzz-audit-key-0123456789abcdefghijkl"

[[requirements]]
id = "security-awareness"
kind = "training"
title = "Security awareness training"
version = "2026.1"
validity_days = 365
url = "https://lms.example.com/courses/security"

[[routes]]
path_prefix = "/"
upstream = "http://127.0.0.1:9"
TOML

log "building clearance"
cargo build --locked --quiet --bin clearance
log "clearance on $gate"
RUST_LOG="${RUST_LOG:-warn}" target/debug/clearance serve --config "$work/clearance.toml" \
    >"$work/clearance.log" 2>&1 &
pids+=($!)

deadline=$((SECONDS + 60))
until curl -fsS "$gate/readyz" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        log "clearance did not become ready; logs in $work" >&2
        tail -n 20 "$work/clearance.log" "$work/provider.log" >&2 || true
        exit 1
    fi
    sleep 0.2
done

log "schemathesis: at most $MAX_EXAMPLES examples per operation, ${TIME_LIMIT}s"
status=0
timeout --signal=INT "$((TIME_LIMIT + 60))" "$venv/bin/schemathesis" run "$gate/.clearance/api/v1/openapi.json" \
    --url "$gate" \
    --header "Authorization: Bearer $admin_token" \
    --checks not_a_server_error \
    --max-examples "$MAX_EXAMPLES" \
    --workers 2 \
    --phases examples,fuzzing,stateful \
    --seed 1 \
    --max-time "$TIME_LIMIT" \
    --no-color \
    >"$work/schemathesis.log" 2>&1 || status=$?
tail -n 60 "$work/schemathesis.log"
if [ "$status" -ne 0 ]; then
    log "FAILED (exit $status): see $work/schemathesis.log and $work/clearance.log" >&2
    exit 1
fi
log "no server errors"
