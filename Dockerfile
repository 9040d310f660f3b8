# tallyfy-bridge images.
#
#   docker build -t tallyfy-bridge .                      # the bridge (default target: runtime)
#   docker build --target sandbox -t tallyfy-sandbox .    # the fake Tallyfy, for demos and tests
#
# The bridge image is built with --no-default-features: no `sandbox` command, no `serve
# --sandbox`, none of the fake Tallyfy's code. The sandbox image is the binary with its default
# `sandbox` feature, started as `tallyfy-bridge sandbox`.
#
# Needs BuildKit (the default since Docker 23; on older engines set DOCKER_BUILDKIT=1), which
# builds only the stages a target needs. Without a registry, scripts/build-images.sh builds the
# *-local targets from a host-built binary; they come first so that even the legacy builder,
# which builds every stage before its --target, never reaches the Rust image.

# Runtime base shared by every target: CA certificates (reqwest trusts the system store), a
# non-root user, the database on a volume.
FROM debian:bookworm-slim AS runtime-base
RUN if ! dpkg-query -W -f '${Status}' ca-certificates 2>/dev/null | grep -q 'ok installed'; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin bridge \
    && mkdir -p /data \
    && chown bridge:bridge /data
ENV BRIDGE__HTTP__HOST=0.0.0.0 \
    BRIDGE__HTTP__PORT=8080 \
    BRIDGE__DATABASE__PATH=/data/bridge.sqlite \
    BRIDGE__LOG__FORMAT=json
WORKDIR /data
VOLUME ["/data"]
USER bridge:bridge
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["tallyfy-bridge", "healthcheck"]
ENTRYPOINT ["tallyfy-bridge"]
CMD ["serve"]

# The bridge from a binary built on a bookworm host (scripts/build-images.sh puts it there).
FROM runtime-base AS runtime-local
COPY target/docker-bin/tallyfy-bridge /usr/local/bin/tallyfy-bridge
EXPOSE 8080

# The sandbox from the host-built binary with the `sandbox` feature.
FROM runtime-base AS sandbox-local
COPY target/docker-bin/tallyfy-bridge-sandbox /usr/local/bin/tallyfy-bridge
EXPOSE 8081
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \
    CMD ["tallyfy-bridge", "healthcheck", "--url", "http://127.0.0.1:8081/_sandbox/stats"]
CMD ["sandbox", "--addr", "0.0.0.0:8081"]

# Compiles the bridge without the sandbox.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY config config
COPY migrations migrations
COPY sandbox sandbox
COPY src src
RUN cargo build --release --locked --no-default-features --bin tallyfy-bridge \
    && strip -o tallyfy-bridge target/release/tallyfy-bridge

# Compiles it again with the sandbox (only the two workspace crates are rebuilt).
FROM builder AS sandbox-builder
RUN cargo build --release --locked --bin tallyfy-bridge \
    && strip -o tallyfy-bridge-sandbox target/release/tallyfy-bridge

# The fake Tallyfy (org demo-org, token sandbox-token), with its control API under /_sandbox.
FROM runtime-base AS sandbox
COPY --from=sandbox-builder /src/tallyfy-bridge-sandbox /usr/local/bin/tallyfy-bridge
EXPOSE 8081
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \
    CMD ["tallyfy-bridge", "healthcheck", "--url", "http://127.0.0.1:8081/_sandbox/stats"]
CMD ["sandbox", "--addr", "0.0.0.0:8081"]

# The bridge (default target).
FROM runtime-base AS runtime
COPY --from=builder /src/tallyfy-bridge /usr/local/bin/tallyfy-bridge
EXPOSE 8080
