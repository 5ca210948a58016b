# syntax=docker/dockerfile:1
# Multi-stage build: a release build, then a slim runtime with a non-root user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p github-stats-server -p github-stats-backfill

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/github-stats --uid 10001 github-stats
COPY --from=build /src/target/release/github-stats-server /usr/local/bin/
COPY --from=build /src/target/release/github-stats-backfill /usr/local/bin/
USER github-stats
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
