"""vLLM's OpenAI server as a process (python -m vllm.entrypoints.openai.api_server)
with the plugin on, and a minimal HTTP client for it: for the server tests and
the TTFT benchmark."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import vllm_fixtures
from genomed_testing import wait_for

MODEL = "tiny-base"
START_TIMEOUT = 600  # seconds; ~1 min on a loaded 2-core machine


class Server:
    def __init__(self, base: Path, genomed_socket: str, extra_args: Sequence[str] = ()) -> None:
        with socket.socket() as s:  # a free port (the server binds it right after)
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ, GENOMED_SOCKET=genomed_socket,
                   VLLM_ALLOW_RUNTIME_LORA_UPDATING="1")
        args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(base), "--served-model-name", MODEL,
                "--host", "127.0.0.1", "--port", str(self.port),
                "--enable-lora", "--max-loras", "2", "--max-cpu-loras", "3",
                "--max-lora-rank", "16", "--dtype", "float32", "--max-model-len", "128",
                "--enforce-eager", "--max-num-seqs", "4", "--seed", "0", *extra_args]
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: List[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # Uvicorn's line once the application started (or EOF if it died)...
        if not self.ready.wait(START_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("vLLM's server did not start:\n" + self.log())
        # ... which it prints before it listens on the socket vLLM bound (no
        # line follows): the first connection accepted is the sign.
        wait_for(self._accepts, timeout=120, what="vLLM's server to accept connections")

    def _accepts(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("vLLM's server exited:\n" + self.log())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=30):
                return True
        except (urllib.error.URLError, ConnectionError):
            return False

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if "Application startup complete" in line:
                self.ready.set()
        self.ready.set()  # EOF: the constructor sees the exit

    def log(self) -> str:
        return "".join(self.lines[-200:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=60)

    def post(self, path: str, body: Dict[str, Any]) -> Tuple[int, Dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                status, text = reply.status, reply.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, {"text": text}

    def complete(self, model: str) -> List[List[int]]:
        """Greedy token ids of each prompt; fails on an error reply."""
        out = []
        for prompt in vllm_fixtures.PROMPTS:
            status, body = self.post("/v1/completions", {
                "model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0,
                "ignore_eos": True, "return_token_ids": True})
            assert status == 200, (status, body)
            out.append(body["choices"][0]["token_ids"])
        return out

    def error(self, model: str) -> Tuple[int, str]:
        status, body = self.post("/v1/completions", {"model": model, "prompt": "w1",
                                                     "max_tokens": 2})
        assert status >= 400, (status, body)
        return status, body["error"]["message"]

    def load_directory(self, name: str, path: Path) -> None:
        status, body = self.post("/v1/load_lora_adapter",
                                 {"lora_name": name, "lora_path": str(path)})
        assert status == 200, (status, body)

    def unload(self, name: str) -> None:
        status, body = self.post("/v1/unload_lora_adapter", {"lora_name": name})
        assert status == 200, (status, body)


    def first_token_seconds(self, model: str, prompt: str = "w1 w2 w3") -> float:
        """Time from sending a streamed completion to its first token (TTFT)."""
        body = json.dumps({"model": model, "prompt": prompt, "max_tokens": 4,
                           "temperature": 0, "ignore_eos": True, "stream": True}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/completions",
                                         data=body,
                                         headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as reply:
            for line in reply:
                if line.startswith(b"data: {"):
                    return time.perf_counter() - start
        raise AssertionError(f"no token streamed for {model}")
