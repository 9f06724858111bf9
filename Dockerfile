# syntax=docker/dockerfile:1
#
# One image, every role: `api`, `worker`, `scheduler` and the all-in-one
# quick start `flash-sale` (the default command). Pick the role with the
# command, e.g. `docker run IMAGE worker` (see docker-compose.yml).
# Needs BuildKit (the default builder of current Docker) for the cache mounts.

# ---- build -----------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# The whole tree at once: sqlx::migrate! embeds ./migrations at compile time
# (build.rs reruns on changes there), so a dependency-only layer would need
# dummy sources and still rebuild on every migration. The cache mounts keep
# the registry and the target dir between builds instead, so a rebuild only
# compiles what changed. Binaries are copied out in the same step because the
# cached target dir is not part of the image.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && cp target/release/api \
       target/release/worker \
       target/release/scheduler \
       target/release/flash-sale \
       target/release/admin \
       target/release/loadgen \
       /out/

# ---- runtime ---------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates for TLS endpoints; curl for the compose health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=builder /out/ /usr/local/bin/

# Listen on every interface inside the container (the code default is
# 127.0.0.1:8080, which nothing outside the container could reach).
ENV API_ADDR=0.0.0.0:8080

USER 10001:10001
EXPOSE 8080

# No ENTRYPOINT: the command is the binary to run (`api`, `worker`, ...).
# The binaries handle SIGTERM themselves (graceful shutdown).
CMD ["flash-sale"]
