#!/usr/bin/env bash
# Installs what the integration tests need beyond the Rust toolchain on Debian 12:
# redis-server, Node.js + npm, the OpenID provider fixture's node modules
# (tests/support/oidc), and nginx + Caddy for the forward-auth tests against real proxies
# (tests/integration/real_proxies.rs). Idempotent: installs only what is missing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf 'install-test-deps: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root for: $* (not root and no sudo)" >&2
        exit 1
    fi
}

apt_packages=()
if command -v redis-server >/dev/null 2>&1; then
    log "redis-server present: $(command -v redis-server)"
else
    apt_packages+=(redis-server)
fi
# redis-cli builds the Redis Cluster of the topology tests (`--cluster create`); Debian ships it
# in redis-tools, which redis-server depends on. Cluster mode and Sentinel (`--sentinel`) are
# part of redis-server itself.
if command -v redis-cli >/dev/null 2>&1; then
    log "redis-cli present: $(command -v redis-cli)"
else
    apt_packages+=(redis-tools)
fi
# scripts/api-fuzz.sh runs schemathesis (PyPI) from a venv under target/.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_packages+=(python3 python3-venv)
fi
if ! command -v curl >/dev/null 2>&1; then
    apt_packages+=(curl)
fi
if command -v node >/dev/null 2>&1; then
    log "node present: $(command -v node) $(node --version)"
else
    apt_packages+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1; then
    apt_packages+=(npm)
fi
# The real reverse proxies in front of Clearance (config/examples/nginx.conf, Caddyfile).
# nginx lives in /usr/sbin, which is not on every PATH.
nginx_installed=false
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    log "nginx present: $(command -v nginx || echo /usr/sbin/nginx)"
else
    apt_packages+=(nginx)
    nginx_installed=true
fi
caddy_installed=false
if command -v caddy >/dev/null 2>&1; then
    log "caddy present: $(command -v caddy)"
else
    apt_packages+=(caddy)
    caddy_installed=true
fi
# Headless Chromium for the real-browser test (Debian's; playwright-core never downloads one).
if [ -x /usr/bin/chromium ]; then
    log "chromium present: /usr/bin/chromium"
else
    apt_packages+=(chromium)
fi

if [ "${#apt_packages[@]}" -gt 0 ]; then
    log "installing with apt-get: ${apt_packages[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt_packages[@]}"
fi

# Installing redis-server from Debian's package also starts a system service on 6379;
# the tests start their own servers on free ports, so that one is harmless.
# Debian's nginx and caddy packages start a service on port 80 when systemd (or an init
# script) is there. The tests run their own instances on free loopback ports and never need
# port 80, so a service that was started by this install is stopped and disabled again, to
# leave port 80 as it was. A proxy that was already installed is left alone.
stop_service() {
    local name="$1"
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now "$name" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
        as_root service "$name" stop >/dev/null 2>&1 || true
    fi
    if [ "$name" = nginx ] && [ -f /run/nginx.pid ]; then
        as_root kill "$(cat /run/nginx.pid)" >/dev/null 2>&1 || true
    fi
}
if [ "$nginx_installed" = true ]; then
    log "stopping the nginx system service the package may have started (tests run their own)"
    stop_service nginx
fi
if [ "$caddy_installed" = true ]; then
    log "stopping the caddy system service the package may have started (tests run their own)"
    stop_service caddy
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    log "note: node $(node --version) is older than 20; tests/support/oidc/polyfills.mjs fills the gaps oidc-provider 9 is known to hit" >&2
fi

# npm writes node_modules/.package-lock.json on every install; if it is newer than the
# committed lockfile and the package is there, the install is up to date.
npm_ci() {
    local dir="$repo_root/$1" package="$2"
    if [ -f "$dir/node_modules/.package-lock.json" ] && [ -f "$dir/node_modules/$package/package.json" ] \
        && [ ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        log "node modules in $1 are up to date"
    else
        log "running npm ci in $1"
        (cd "$dir" && npm ci --no-audit --no-fund)
    fi
}
npm_ci tests/support/oidc oidc-provider
npm_ci tests/support/browser playwright-core

log "done"
