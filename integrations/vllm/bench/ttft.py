"""Time to first token of the first request naming an adapter, by tier, in one
run of one vLLM OpenAI server (ratios matter, not absolute times; not a test):

  directory      vLLM's own loading: POST /v1/load_lora_adapter, then the request
  genomed cold   the plugin's resolver; genomed loads the adapter (not resident)
  genomed warm   resident in genomed, new to this vLLM (a second or restarted
                 engine on the node: the tier no other server has)
  in vLLM        the same adapter again (vLLM's cache)
  base           the base model (reference)

A Llama-like base (hidden 1024, 4 layers, random weights) and all-linear rank-64
adapters (~20 MiB each, float32) written by PEFT; their files are in the page
cache for every tier. Each tier is the median over --adapters adapters.

    venv="$(bash scripts/vllm-env.sh)"
    GENOMED_BUILD_DIR=$PWD/build "$venv/bin/python" integrations/vllm/bench/ttft.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import genomed  # noqa: E402
import vllm_fixtures  # noqa: E402
from genomed_testing import Daemon  # noqa: E402
from vllm_server import MODEL, Server  # noqa: E402

BIG = dict(vllm_fixtures.LLAMA, hidden_size=1024, intermediate_size=2816, num_hidden_layers=4,
           num_attention_heads=16, num_key_value_heads=16, initializer_range=0.02)
KIND = vllm_fixtures.AdapterSpec("bench", dict(r=64, lora_alpha=64, target_modules="all-linear"),
                                 seed=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=3, help="adapters per tier")
    args = parser.parse_args()
    k = args.adapters
    with tempfile.TemporaryDirectory(prefix="genomed-vllm-bench-") as tmp:
        out = Path(tmp)
        base = vllm_fixtures.write_base(out / "base", BIG)
        root = out / "adapters"
        names = {tier: [f"{tier}-{i}" for i in range(k)] for tier in ("dir", "cold", "warm")}
        for i, name in enumerate(n for tier in names.values() for n in tier):
            vllm_fixtures.write_adapter(base, KIND, root / name, seed=i)
        size = sum(f.stat().st_size for f in (root / names["dir"][0]).iterdir())
        with Daemon(roots=[root], budget="1G") as daemon:
            server = Server(base, daemon.socket, ["--max-lora-rank", "64", "--max-loras", "4",
                                                  "--max-cpu-loras", str(3 * k + 1),
                                                  "--max-model-len", "64"])
            try:
                results = {"base": [], "directory": [], "genomed cold": [],
                           "genomed warm": [], "in vLLM": []}
                server.first_token_seconds(MODEL)  # warm-up
                with genomed.connect(daemon.socket) as client:
                    for i in range(k):
                        results["base"].append(server.first_token_seconds(MODEL))
                        start = time.perf_counter()
                        server.load_directory(f"d{i}", root / names["dir"][i])
                        results["directory"].append(
                            time.perf_counter() - start + server.first_token_seconds(f"d{i}"))
                        results["genomed cold"].append(
                            server.first_token_seconds(names["cold"][i]))
                        client.load(names["warm"][i])
                        results["genomed warm"].append(
                            server.first_token_seconds(names["warm"][i]))
                        results["in vLLM"].append(server.first_token_seconds(names["warm"][i]))
            finally:
                server.stop()
    medians = {tier: statistics.median(v) for tier, v in results.items()}
    print(f"adapter: {size / 2**20:.1f} MiB on disk, {k} per tier, median TTFT:")
    for tier, m in medians.items():
        print(f"  {tier:13s} {m * 1000:8.1f} ms   x{m / medians['directory']:.2f} of directory")
    print(json.dumps({"adapter_bytes": size, "per_tier": k,
                      "median_ttft_s": medians, "all_s": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
