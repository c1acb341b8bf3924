# syntax=docker/dockerfile:1
# sisguard server image: CUDA 13 + cuDNN 9 (what onnxruntime-gpu 1.31 needs), running as a
# non-root user, health-checked through the gRPC health service. The same image runs on hosts
# without a GPU: ONNX Runtime then falls back to CPU (one warning line at start-up).
#
#   docker build -t sisguard .
#   docker run --rm -p 127.0.0.1:50051:50051 sisguard                         # CPU host
#   docker run --rm --gpus all -p 127.0.0.1:50051:50051 sisguard              # GPU host
#   docker run --rm -v ./my.yaml:/etc/sisguard/config.yaml:ro -v ./models:/models:ro sisguard
#
# Not built on the development machines (no Docker engine there): CI checks it with hadolint.

ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG BUILD_IMAGE=ubuntu:24.04

# ---- build: a virtual environment with sisguard[server] under the pinned constraints ----------
FROM ${BUILD_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY proto/ proto/
COPY client/ client/
COPY server/ server/
COPY prune/ prune/
COPY sis/ sis/
COPY wire/ wire/
COPY audit/ audit/
# The [server] extra only; torch (the prune extra) stays out of the image. Versions come from
# constraints.txt (onnxruntime-gpu 1.31.1, grpcio 1.85.3, ...).
RUN /opt/venv/bin/pip install --no-compile -c constraints.txt ".[server]" \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---- runtime -----------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 sisguard \
    && useradd --system --uid 10001 --gid sisguard --home-dir /nonexistent --shell /usr/sbin/nologin sisguard
COPY --from=build /opt/venv /opt/venv
COPY server/models/digits/ /opt/sisguard/models/digits/
COPY deploy/docker/config.yaml /etc/sisguard/config.yaml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SISGUARD_CONFIG=/etc/sisguard/config.yaml
# Nothing is written at run time besides /tmp (mount a tmpfs there with a read-only root).
USER 10001:10001
WORKDIR /tmp
# 50051 gRPC (sisguard.v1, inference v2, health, reflection); 50052 plaintext health only; 9464 metrics.
EXPOSE 50051 50052 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-m", "sisguard.server.healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["sisguard"]
CMD ["serve", "--config", "/etc/sisguard/config.yaml"]
