# login-scorer container image.
#
#   docker build -t login-scorer .
#   docker run -p 8080:8080 -v "$PWD/artifacts:/models" login-scorer
#
# Three stages: the release binary, the ONNX Runtime library taken from the
# same pinned onnxruntime wheel that `make setup` installs, and a slim runtime
# image that carries the shipped bundle under /models (a mountable volume, so
# a new version directory copied there is hot-reloaded).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin login-scorer

FROM python:3.11-slim-bookworm AS onnxruntime
COPY training/requirements-runtime.txt /tmp/requirements-runtime.txt
RUN pip install --no-cache-dir --no-deps --target /opt/ort \
        -r /tmp/requirements-runtime.txt

FROM debian:bookworm-slim
# curl serves only the HEALTHCHECK below.
# NOTE: apt versions are not pinned (hadolint DL3008): bookworm's security
# updates replace old versions, so a pin would break future builds.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin scorer

COPY --from=onnxruntime /opt/ort/onnxruntime/capi/libonnxruntime.so.1.31.1 \
    /opt/onnxruntime/lib/libonnxruntime.so.1.31.1
COPY --from=build /src/target/release/login-scorer /usr/local/bin/login-scorer
COPY --chown=scorer:scorer artifacts /models

ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.1.31.1 \
    LOGIN_SCORER_LISTEN=0.0.0.0:8080 \
    LOGIN_SCORER_MODEL_ROOT=/models/rba-autoencoder \
    LOGIN_SCORER_LOG_FORMAT=json

VOLUME ["/models"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/login-scorer"]
CMD ["serve"]
