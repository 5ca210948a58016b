# syntax=docker/dockerfile:1
# Multi-stage build: the dependencies in a layer of their own, a stripped release build, then a
# slim runtime with a non-root user that owns its volumes. Base images are pinned to exact
# versions; `docker pull` them once and add `@sha256:…` to pin them byte for byte.
#
# There is no Docker engine on CI: `github-stats-server/tests/api/container.rs` reads this file
# and runs what the runtime stage runs (the server as uid 10001, in the directory layout the
# `install -d` line below creates, with the ENV below), see docs/operations.md. Keep those lines
# plain (one `install -d` of the home and every VOLUME, numeric USER) so that it can.

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# Release binaries without debug information or symbols (the local release profile keeps line
# tables for the benches).
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=true
# 1. The dependencies, built from the manifests alone: this layer is rebuilt only when a
#    manifest or Cargo.lock changes, not when a source file does. Every workspace member's
#    manifest is needed (the test checks this list against Cargo.toml's members); each member
#    gets empty targets.
COPY Cargo.toml Cargo.lock ./
COPY github-stats-core/Cargo.toml github-stats-core/
COPY github-stats-cli/Cargo.toml github-stats-cli/
COPY github-stats-server/Cargo.toml github-stats-server/
COPY github-stats-backfill/Cargo.toml github-stats-backfill/
COPY benches/Cargo.toml benches/
COPY xtask/Cargo.toml xtask/
RUN for member in github-stats-core github-stats-cli github-stats-server github-stats-backfill benches xtask; do \
        mkdir -p "$member/src" && touch "$member/src/lib.rs" && echo 'fn main() {}' > "$member/src/main.rs"; \
    done \
    && mkdir -p benches/benches \
    && for bench in $(awk '/^\[\[bench\]\]/ { b = 1; next } b && /^name *=/ { gsub(/^name *= *"|"$/, ""); print; b = 0 }' benches/Cargo.toml); do \
        echo 'fn main() {}' > "benches/benches/$bench.rs"; \
    done \
    && cargo build --release --locked -p github-stats-server -p github-stats-backfill \
    && rm -rf github-stats-core/src github-stats-cli/src github-stats-server/src github-stats-backfill/src benches/src benches/benches xtask/src
# 2. The workspace itself. COPY keeps the files' own modification times, older than the empty
#    targets built above: touch them so that cargo rebuilds the workspace crates.
COPY . .
RUN find github-stats-core github-stats-cli github-stats-server github-stats-backfill -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p github-stats-server -p github-stats-backfill

FROM debian:12.12-slim AS runtime
# The user (uid and gid 10001) owns its home and every VOLUME, created here before VOLUME and
# USER: a volume Docker creates for a missing directory is root's, and the server could not
# write its data file, poll state or raw poll files.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 github-stats \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/github-stats --shell /usr/sbin/nologin github-stats \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/github-stats /var/lib/github-stats/data /var/lib/github-stats/state /var/lib/github-stats/downloaded-events
COPY --from=build /src/target/release/github-stats-server /usr/local/bin/
COPY --from=build /src/target/release/github-stats-backfill /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/github-stats
ENV BIND_ADDRESS=0.0.0.0:8000 \
    DATA_DIR=/var/lib/github-stats/data \
    CLIENT_STATE_FILE=/var/lib/github-stats/state/client-state.json \
    EVENTS_DIRECTORY=/var/lib/github-stats/downloaded-events
VOLUME ["/var/lib/github-stats/data", "/var/lib/github-stats/state", "/var/lib/github-stats/downloaded-events"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["github-stats-server"]
