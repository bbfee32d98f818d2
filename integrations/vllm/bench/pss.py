"""Host memory of two vLLM servers holding the same 8 adapters: from their
directories vs through genomed. One run (ratios matter; not a test).

Each mode starts two OpenAI servers on one base model, makes each use the 8
adapters (all-linear rank 64, ~19 MiB float32 each, written by PEFT), then
sums the PSS (/proc/PID/smaps_rollup: shared pages split between the
processes that map them) of every process of both servers (API server and
engine core), and, for genomed, of the daemon and its workers too.

    venv="$(bash scripts/vllm-env.sh)"
    GENOMED_BUILD_DIR=$PWD/build "$venv/bin/python" integrations/vllm/bench/pss.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import vllm_fixtures  # noqa: E402
from genomed_testing import Daemon  # noqa: E402
from vllm_server import Server  # noqa: E402

from ttft import BIG, KIND  # noqa: E402  (same base and adapter kind)

ADAPTERS = 8
ARGS = ["--max-lora-rank", "64", "--max-loras", "2", "--max-cpu-loras", str(ADAPTERS),
        "--max-model-len", "64"]


def tree(pid: int) -> List[int]:
    """pid and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            children = (task / "children").read_text().split()
            todo.extend(int(c) for c in children)
    return out


def pss_kib(pids: List[int]) -> int:
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


def run(base: Path, root: Path, daemon: Daemon, names: List[str], via_genomed: bool) -> Dict:
    servers = [Server(base, daemon.socket, ARGS) for _ in range(2)]
    try:
        for s in servers:
            for name in names:
                if via_genomed:
                    s.complete(name)
                else:
                    s.load_directory(f"dir-{name}", root / name)
                    s.complete(f"dir-{name}")
        vllm_kib = sum(pss_kib(tree(s.process.pid)) for s in servers)
        genomed_kib = pss_kib(tree(daemon.pid)) if via_genomed else 0
        return {"vllm_pss_mib": vllm_kib / 1024, "genomed_pss_mib": genomed_kib / 1024,
                "total_mib": (vllm_kib + genomed_kib) / 1024}
    finally:
        for s in servers:
            s.stop()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="genomed-vllm-pss-") as tmp:
        out = Path(tmp)
        base = vllm_fixtures.write_base(out / "base", BIG)
        root = out / "adapters"
        names = [f"a{i}" for i in range(ADAPTERS)]
        for i, name in enumerate(names):
            vllm_fixtures.write_adapter(base, KIND, root / name, seed=i)
        size = sum(f.stat().st_size for f in (root / names[0]).iterdir())
        with Daemon(roots=[root], budget="1G") as daemon:
            results = {"directories": run(base, root, daemon, names, via_genomed=False),
                       "genomed": run(base, root, daemon, names, via_genomed=True)}
    print(f"two servers, {ADAPTERS} adapters of {size / 2**20:.1f} MiB each, PSS:")
    for mode, r in results.items():
        print(f"  {mode:12s} vLLM {r['vllm_pss_mib']:8.1f} MiB + genomed "
              f"{r['genomed_pss_mib']:7.1f} MiB = {r['total_mib']:8.1f} MiB")
    print(json.dumps({"adapter_bytes": size, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
