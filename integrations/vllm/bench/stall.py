"""Does loading an adapter stall a running stream? One vLLM OpenAI server, one
genomed, one run (ratios matter; not a test):

A request streams tokens with an adapter already in vLLM. After --after tokens,
another request names a cold ~120 MiB adapter, either
  directory  vLLM's own loading (POST /v1/load_lora_adapter, then the request), or
  genomed    the plugin (the resolver loads it in genomed's workers, in a thread),
and the stream's inter-token gaps while that load runs are compared with its
gaps before it (median) : the largest gap is the stall.

Base: Llama-like, hidden 1024, 6 layers, random weights; adapters: all-linear
rank 256, float32, written by PEFT, files in the page cache.

    venv="$(bash scripts/vllm-env.sh)"
    GENOMED_BUILD_DIR=$PWD/build "$venv/bin/python" integrations/vllm/bench/stall.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import vllm_fixtures  # noqa: E402
from genomed_testing import Daemon  # noqa: E402
from vllm_server import Server  # noqa: E402

BASE = dict(vllm_fixtures.LLAMA, hidden_size=1024, intermediate_size=2816, num_hidden_layers=6,
            num_attention_heads=16, num_key_value_heads=16, initializer_range=0.02,
            max_position_embeddings=512)
KIND = vllm_fixtures.AdapterSpec("bench", dict(r=256, lora_alpha=512,
                                               target_modules="all-linear"), seed=1)
STREAM_TOKENS = 240


def stream_times(server: Server, model: str, on_token: Callable[[int], None]) -> List[float]:
    """Arrival time of each streamed token of one long greedy completion."""
    body = json.dumps({"model": model, "prompt": "w1 w2 w3", "max_tokens": STREAM_TOKENS,
                       "temperature": 0, "ignore_eos": True, "stream": True}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/completions",
                                     data=body, headers={"Content-Type": "application/json"})
    times: List[float] = []
    with urllib.request.urlopen(request, timeout=600) as reply:
        for line in reply:
            if line.startswith(b"data: {"):
                times.append(time.perf_counter())
                on_token(len(times))
    return times


def measure(server: Server, stream_model: str, after: int,
            load: Callable[[], None]) -> Dict[str, float]:
    window: Dict[str, float] = {}
    started = threading.Event()

    def cold() -> None:
        window["start"] = time.perf_counter()
        load()
        window["end"] = time.perf_counter()

    loader = threading.Thread(target=cold)

    def on_token(n: int) -> None:
        if n == after and not started.is_set():
            started.set()
            loader.start()

    times = stream_times(server, stream_model, on_token)
    loader.join()
    gaps = [(b - a, b) for a, b in zip(times, times[1:])]
    before = [g for g, t in gaps if t < window["start"]]
    during = [g for g, t in gaps if window["start"] <= t <= window["end"] + max(before)]
    return {"median_gap_before_ms": statistics.median(before) * 1000,
            "max_gap_during_ms": max(during, default=0.0) * 1000,
            "load_ms": (window["end"] - window["start"]) * 1000,
            "tokens_during_load": len(during)}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="genomed-vllm-stall-") as tmp:
        out = Path(tmp)
        base = vllm_fixtures.write_base(out / "base", BASE)
        root = out / "adapters"
        for i, name in enumerate(("stream", "cold-dir", "cold-genomed")):
            vllm_fixtures.write_adapter(base, KIND, root / name, seed=i)
        size = sum(f.stat().st_size for f in (root / "cold-dir").iterdir())
        with Daemon(roots=[root], budget="2G") as daemon:
            server = Server(base, daemon.socket, ["--max-lora-rank", "256", "--max-loras", "3",
                                                  "--max-cpu-loras", "4",
                                                  "--max-model-len", "512"])
            try:
                server.complete("stream")  # in vLLM from now on

                def directory() -> None:
                    server.load_directory("cold-dir-vllm", root / "cold-dir")
                    server.first_token_seconds("cold-dir-vllm")

                results = {
                    "directory": measure(server, "stream", 40, directory),
                    "genomed": measure(server, "stream", 40,
                                       lambda: server.first_token_seconds("cold-genomed")),
                }
            finally:
                server.stop()
    print(f"cold adapter: {size / 2**20:.1f} MiB on disk; stream of {STREAM_TOKENS} tokens")
    for how, r in results.items():
        print(f"  {how:9s} load {r['load_ms']:7.0f} ms, gap before {r['median_gap_before_ms']:6.1f}"
              f" ms (median), largest gap during the load {r['max_gap_during_ms']:7.1f} ms "
              f"({r['tokens_during_load']} tokens during it)")
    print(json.dumps({"adapter_bytes": size, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
