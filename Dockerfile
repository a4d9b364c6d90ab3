# CPU image: the same install as `make serve` on a fresh machine.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make gcc g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml Makefile README.md ./
COPY requirements requirements
COPY scripts scripts
COPY service service
RUN make install && .venv/bin/loragate prepare-model --cache-dir /app/.cache
COPY adapters adapters
ENV LORAGATE_HOST=0.0.0.0 LORAGATE_CACHE_DIR=/app/.cache
EXPOSE 8000
CMD [".venv/bin/loragate", "serve"]
