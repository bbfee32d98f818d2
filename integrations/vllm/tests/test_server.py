"""vLLM's OpenAI server (python -m vllm.entrypoints.openai.api_server, a real
process, over HTTP) serving adapters from a real genomed by name.

One server for the module (its start-up is most of the time). It runs with
GENOMED_SOCKET and VLLM_ALLOW_RUNTIME_LORA_UPDATING=1: a request naming an
adapter the server does not know goes to the plugin's resolver.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from genomed_testing import wait_for

import vllm_fixtures
from vllm_fixtures import leases

MODEL = "tiny-base"
START_TIMEOUT = 600  # seconds; ~1 min on a loaded 2-core machine


class Server:
    def __init__(self, base: Path, genomed_socket: str) -> None:
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
                "--enforce-eager", "--max-num-seqs", "4", "--seed", "0"]
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: List[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # Uvicorn's line after the server listens (or EOF if it died).
        if not self.ready.wait(START_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("vLLM's server did not start:\n" + self.log())

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


@pytest.fixture(scope="module")
def server(fixtures, daemon):
    s = Server(fixtures["base"], daemon.socket)
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.parametrize("name", vllm_fixtures.SERVED)
def test_a_request_naming_a_genomed_adapter_equals_vllms_directory_loading(server, fixtures,
                                                                          name):
    base = server.complete(MODEL)
    server.load_directory(f"dir-{name}", fixtures[name])
    direct = server.complete(f"dir-{name}")
    assert direct != base, "the adapter does not change the output: the test could not fail"
    assert server.complete(name) == direct


def test_an_unknown_name_is_404_with_genomeds_reason(server):
    status, message = server.error("no-such-adapter")
    assert status == 404
    assert "not_found" in message and "no-such-adapter" in message


def test_a_corrupt_adapter_gets_genomeds_code_and_the_server_keeps_serving(server, daemon,
                                                                            fixtures):
    base, plain = server.complete(MODEL), server.complete("plain")
    path = daemon.root / "corrupt"
    shutil.copytree(fixtures["plain"], path)
    weights = path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated: header cut off
    status, message = server.error("corrupt")
    assert status == 422, message
    assert "corrupt" in message and "st_" in message  # genomed's safetensors error code
    # Still serving the base model and other adapters.
    assert server.complete(MODEL) == base
    assert server.complete("plain") == plain


def test_dora_is_refused_with_a_clear_error_never_served(server):
    status, message = server.error("dora")
    assert status == 422
    assert "vllm_refused" in message and "DoRA" in message


def test_unload_change_load_serves_the_new_weights_and_leases_follow(server, daemon, client,
                                                                     fixtures):
    path = vllm_fixtures.rewrite(fixtures["base"], daemon.root, "changing-http", "plain",
                                 seed=100)
    before = server.complete("changing-http")
    # vLLM's engine holds the adapter, so genomed shows its lease.
    assert leases(client)["changing-http"] == 1
    server.unload("changing-http")
    # The plugin also removed it from the engine: the lease ends.
    wait_for(lambda: leases(client)["changing-http"] == 0, what="vLLM's lease to end")
    assert client.unload("changing-http").outcome == "freed"
    vllm_fixtures.rewrite(fixtures["base"], daemon.root, "changing-http", "plain",
                          seed=200)
    after = server.complete("changing-http")
    assert after != before
    server.load_directory("dir-changing-200", path)
    assert after == server.complete("dir-changing-200")
