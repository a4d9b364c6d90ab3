"""vLLM's own OpenAI server as a peer, started from the same environment, pure (no plugins)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.service_process import ServiceProcess


class VllmServer(ServiceProcess):
    """`python -m vllm.entrypoints.openai.api_server` on the same model folder and engine options."""

    ready_path = "/health"

    def __init__(self, log_path: Path, model_dir: Path, served_name: str, extra_args: list[str] | None = None) -> None:
        super().__init__(log_path, env={
            "VLLM_PLUGINS": "none",  # loragate's plugin must not patch the peer
            "VLLM_CPU_KVCACHE_SPACE": "1",
        })
        self.model_dir, self.served_name = model_dir, served_name
        self.extra_args = extra_args or []

    def start(self) -> VllmServer:
        env = os.environ | {"PYTHONUNBUFFERED": "1"} | self.extra_env
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
             "--served-model-name", self.served_name, "--host", "127.0.0.1", "--port", str(self.port),
             "--max-model-len", "2048", "--max-num-seqs", "16", "--max-num-batched-tokens", "1024",
             "--dtype", "bfloat16", "--enforce-eager", "--seed", "0", *self.extra_args],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self
