#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine that has only the Rust toolchain:
# installs what is missing (redis-server, Node.js, the OpenID provider's node modules,
# rustfmt and clippy), then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-test-deps.sh

# A clean clone builds once: incremental data would only take disk space (CI once ran out of it).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        echo "test: installing the $component component"
        rustup component add "$component"
    fi
done

echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "test: cargo clippy --features otel (OpenTelemetry traces, off by default)"
cargo clippy --locked --features otel --lib --bins -- -D warnings
echo "test: cargo test"
cargo test --locked --all-targets
echo "test: API fuzzing (schemathesis against the OpenAPI document)"
scripts/api-fuzz.sh
