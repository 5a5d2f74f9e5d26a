# Multi-stage build: a cached dependency layer, a stripped binary, a non-root runtime with a CA
# bundle (WeCom is reached over TLS and certificates are verified).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild them: stand-ins for every target the
# manifest names (cargo refuses a manifest whose bench files are missing), then a release build.
COPY Cargo.toml Cargo.lock ./
COPY wecom-sim/Cargo.toml wecom-sim/
RUN mkdir -p src benches wecom-sim/src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && touch wecom-sim/src/lib.rs \
    && for b in $(sed -n '/^\[\[bench\]\]/{n;s/^name = "\(.*\)"/\1/p}' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo build --release --locked
# Only the sources (the proxy's and the simulator's, which `--dev` runs), and the dev config
# src/dev.rs builds in (`include_str!`): .dockerignore keeps
# the context to what is copied here, so a local target/ or fuzz build never reaches the daemon.
# tests/e2e/newcomer/docker.rs builds exactly these files in a clean folder, so a missing one fails CI.
COPY src/ src/
COPY wecom-sim/src/ wecom-sim/src/
COPY conf/dev.yaml conf/
RUN touch src/main.rs src/lib.rs wecom-sim/src/lib.rs && cargo build --release --locked --bin wecom-sidecar \
    && strip target/release/wecom-sidecar

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home wecom
COPY --from=build /src/target/release/wecom-sidecar /usr/local/bin/wecom-sidecar
# The sidecar's own example configs; conf/k8s, conf/prometheus and conf/grafana are for the cluster.
COPY conf/*.yaml /etc/wecom-sidecar/
USER 10001
# App traffic and admin (metrics, probes). Bind them beyond loopback only in a pod network you trust.
# 18480: the WeCom simulator of `--dev`; 8090: the callback listener of `--dev`'s config.
EXPOSE 8080 9901 8090 18480
ENV WECOM_SIDECAR_CONFIG=/etc/wecom-sidecar/sidecar.yaml
# `--dev` in a container: listen on every interface so `docker run -p 8080:8080 -p 9901:9901
# -p 18480:18480 IMAGE --dev` is reachable; a run of a real config is not affected.
ENV WECOM_SIDECAR_DEV_HOST=0.0.0.0
ENTRYPOINT ["/usr/local/bin/wecom-sidecar"]
