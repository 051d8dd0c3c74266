# syntax=docker/dockerfile:1
#
# Clearance container image.
#   docker build -t clearance .
#   docker run --rm -v "$PWD/clearance.toml:/etc/clearance/clearance.toml:ro" -p 4180:4180 clearance
# The image holds no configuration: mount one at /etc/clearance/clearance.toml (or pass
# `serve --config OTHER_PATH`). Inside a container set server.listen = "0.0.0.0:4180" (or
# CLEARANCE_SERVER__LISTEN=0.0.0.0:4180); 127.0.0.1 would be unreachable through a published port.
# Secrets: CLEARANCE_OIDC__CLIENT_SECRET_FILE / CLEARANCE_SESSION__COOKIE_SECRET_FILE naming
# mounted files (see docker-compose.yml).

# ---- build -----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Cargo.toml names the integration-test target under tests/ and the bench under benches/, so
# their sources come with it (cargo refuses a manifest whose named targets are missing);
# .dockerignore keeps target/, node_modules and .git out of the context.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY tests ./tests
COPY benches ./benches

# The cache mounts keep the registry and the build directory between builds (BuildKit); the
# binary is copied out of the cached target directory into the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/clearance /usr/local/bin/clearance

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim

# CA certificates for https:// issuers, upstreams and rediss://.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged system user with a fixed uid/gid (numeric USER below, so that
# Kubernetes' runAsNonRoot can verify it).
RUN groupadd --system --gid 10001 clearance \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin clearance \
    && mkdir -p /etc/clearance

COPY --from=build /usr/local/bin/clearance /usr/local/bin/clearance

USER 10001:10001
EXPOSE 4180

ENTRYPOINT ["clearance"]
CMD ["serve", "--config", "/etc/clearance/clearance.toml"]
