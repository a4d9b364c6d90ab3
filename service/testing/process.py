"""Real server processes for the integration tests and the benchmarks: `loragate serve` (real vLLM
engine, real model) and vLLM's own OpenAI server as a peer. Both are subprocesses: nothing here
imports vLLM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.config import PROJECT_ROOT

READY_TIMEOUT_S = float(os.environ.get("LORAGATE_TEST_READY_TIMEOUT", "420"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Every test service runs keyless on 127.0.0.1 unless a test passes its own settings in `env`
# (an auth test passes keys with LORAGATE_AUTH_DISABLED=false: keys and auth_disabled together
# are refused at start).
DEFAULT_ENV = {"PYTHONUNBUFFERED": "1", "LORAGATE_AUTH_DISABLED": "true"}


class ServiceProcess:
    """One service process on a free port; logs go to `log_path`. `env` is added to
    `DEFAULT_ENV` and the caller's environment, and wins over both."""

    ready_path = "/health/ready"

    def __init__(self, log_path: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.extra_env = env or {}
        self.args = args or []
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "service", "serve", "--port", str(self.port), *self.args]

    def start(self) -> ServiceProcess:
        env = os.environ | DEFAULT_ENV | self.extra_env
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=PROJECT_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # so stop() can signal the engine subprocesses too
        )
        return self

    def start_ready(self, timeout: float = READY_TIMEOUT_S) -> ServiceProcess:
        """Start and wait until ready; a process that never gets there is killed, not left behind."""
        self.start()
        try:
            return self.wait_ready(timeout)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}{self.ready_path}", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"service not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)
        finally:
            self._log.close()


class VllmServer(ServiceProcess):
    """`python -m vllm.entrypoints.openai.api_server` on the same model folder, pure (no plugins),
    started from the same environment. `engine_args` replaces the stock engine flags below (the
    bench builds them from loragate's layout); `drop_env` names inherited variables to remove."""

    ready_path = "/health"
    STOCK_ENGINE_ARGS = ("--max-model-len", "2048", "--max-num-seqs", "16", "--max-num-batched-tokens", "1024",
                         "--dtype", "bfloat16", "--enforce-eager", "--seed", "0")

    def __init__(self, log_path: Path, model_dir: Path, served_name: str, extra_args: list[str] | None = None,
                 engine_args: list[str] | None = None, drop_env: list[str] | None = None) -> None:
        super().__init__(log_path, env={
            "VLLM_PLUGINS": "none",  # loragate's plugin must not patch the peer
            "VLLM_CPU_KVCACHE_SPACE": "1",
        })
        self.model_dir, self.served_name = model_dir, served_name
        self.extra_args = extra_args or []
        self.engine_args = list(self.STOCK_ENGINE_ARGS) if engine_args is None else engine_args
        self.drop_env = drop_env or []

    def command(self) -> list[str]:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
                "--served-model-name", self.served_name, "--host", "127.0.0.1", "--port", str(self.port),
                *self.engine_args, *self.extra_args]

    def environment(self) -> dict[str, str]:
        env = os.environ | {"PYTHONUNBUFFERED": "1"} | self.extra_env
        return {key: value for key, value in env.items() if key not in self.drop_env}

    def start(self) -> VllmServer:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self
