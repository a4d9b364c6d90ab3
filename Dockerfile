# CPU image: the same install as `make serve` on a fresh machine (deployment issue will harden it).
FROM python:3.11-slim
# The CPU build of torch (2.13.0+cpu) is published on PyTorch's own wheel index, not on PyPI:
# pass that index with --build-arg PIP_EXTRA_INDEX_URL=... when building outside the project's
# machines (where the wheel lies on disk).
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
RUN apt-get update && apt-get install -y --no-install-recommends make gcc g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml Makefile README.md ./
COPY requirements requirements
COPY scripts scripts
COPY service service
RUN make install && .venv/bin/loragate prepare-model --cache-dir /app/.cache
COPY adapters adapters
ENV LORAGATE_HOST=0.0.0.0 LORAGATE_CACHE_DIR=/app/.cache
# API keys are required: the container refuses to start without them. Pass them at run time, e.g.
#   docker run -e LORAGATE_API_KEYS='["KEY"]' -e LORAGATE_ADMIN_KEYS='["ADMIN_KEY"]' ...
# or mount keys files and set LORAGATE_API_KEYS_FILE / LORAGATE_ADMIN_KEYS_FILE (see README, Authentication).
EXPOSE 8000
CMD [".venv/bin/loragate", "serve"]
