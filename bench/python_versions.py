"""python_bench --versions (issue 23): from a new version of an adapter in
use (RELOAD of new files, PUBLISH from memory) to its first acquire, against
UNLOAD + a cold load of files, in one run. Run through bench/python_bench.py
--versions; docs/performance.md explains it."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import genomed
from python_bench import fmt_ms, make_adapter, quantile, start_daemon, stop_daemon, touch_numpy


# ---- part 4 (--versions): a new version of a resident adapter --------------------------


def run_versions(sizes: Sequence[int], rounds: int, tmp: Path,
                 log: Callable[[str], None]) -> Dict[str, Any]:
    """Time from new files of an adapter in use to the first acquire of the
    new version, its views touched. Two ways, alternating within each round,
    each after the trainer's rename put the other version's tensors file in
    place (untimed; the page cache holds it, as just written):

    - ``reload``: RELOAD while a lease on the old version is held (a request
      in flight), then acquire; the old lease is released after;
    - ``cold``: what a server does without RELOAD: UNLOAD (no lease left, so
      it frees at once) and acquire, which loads the files cold.

    And two ways for a trainer that holds the new version in memory (its
    tensors and config dicts, read from the other version's files untimed):

    - ``publish``: PUBLISH of the tensors (serialized into sealed memfds,
      no file) while a lease on the old version is held, then acquire;
    - ``write_cold``: write the files (safetensors, config JSON, renamed into
      the root), then UNLOAD and acquire, which loads them cold.

    Both versions have the same geometry (two seeds of make_adapter)."""
    root, staging = tmp / "versions", tmp / "versions-staging"
    root.mkdir()
    staging.mkdir()
    files: Dict[int, List[Path]] = {}
    for size in sizes:
        files[size] = [make_adapter(staging, f"v{size}m-{i}", size, seed=300 + i)
                       for i in range(2)]
        shutil.copytree(files[size][0].parent, root / f"v{size}m")
    # Room for two versions of a file-loaded and of a published adapter.
    daemon = start_daemon(f"{sum(4 * s + 64 for s in sizes)}M", [root])
    results: Dict[str, Any] = {}
    version = 0

    import safetensors.numpy

    def in_memory(size: int, i: int) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """Version i as a trainer holds it: tensors and config in memory."""
        weights = files[size][i]
        with open(weights.parent / "adapter_config.json") as f:
            return safetensors.numpy.load_file(str(weights)), json.load(f)

    def write_files(size: int, tensors: Dict[str, Any], config: Dict[str, Any]) -> None:
        """A trainer without PUBLISH: save both files, rename them into the root."""
        target = root / f"v{size}m"
        safetensors.numpy.save_file(tensors, str(target / "adapter_model.tmp"))
        with open(target / "adapter_config.tmp", "w") as f:
            json.dump(config, f)
        os.replace(target / "adapter_config.tmp", target / "adapter_config.json")
        os.replace(target / "adapter_model.tmp", target / "adapter_model.safetensors")

    def publish(size: int) -> None:
        nonlocal version
        version += 1
        target = root / f"v{size}m" / "adapter_model.safetensors"
        shutil.copyfile(files[size][version % 2], target.with_suffix(".tmp"))
        os.replace(target.with_suffix(".tmp"), target)

    try:
        with genomed.connect(daemon.socket) as client:
            for size in sizes:
                name = f"v{size}m"
                samples: Dict[str, List[float]] = {"reload": [], "cold": [], "publish": [],
                                                   "write_cold": []}
                client.acquire(name).release()
                memory = [in_memory(size, i) for i in range(2)]
                published = f"m{size}m"  # under no root: published only
                client.publish(published, *memory[1])
                def swapped(kind: str, target: str, swap: Callable[[], Any]) -> None:
                    """`swap` under a lease on the old version, then the first
                    acquire of the new one, touched: one sample of `kind`."""
                    old = client.acquire(target)
                    t0 = time.perf_counter()
                    info = swap()
                    lease = client.acquire(target)
                    touch_numpy(lease.tensors)
                    samples[kind].append(time.perf_counter() - t0)
                    if lease.digest != info.digest or info.previous_leases != 1:
                        raise RuntimeError(f"{target}: {kind} did not swap under a lease: {info}")
                    lease.release()
                    old.release()

                def cold(kind: str, before: Callable[[], None]) -> None:
                    """`before` (timed or not), UNLOAD, then a cold first acquire."""
                    t0 = time.perf_counter()
                    before()
                    if kind == "cold":
                        t0 = time.perf_counter()
                    if client.unload(name).outcome != "freed":
                        raise RuntimeError(f"{name}: a lease was left")
                    lease = client.acquire(name)
                    touch_numpy(lease.tensors)
                    samples[kind].append(time.perf_counter() - t0)
                    lease.release()

                for r in range(rounds + 1):  # the first round warms up, untimed
                    version_r = memory[r % 2]
                    swapped("publish", published,
                            lambda: client.publish(published, *version_r))
                    cold("write_cold", lambda: write_files(size, *version_r))
                for _ in range(rounds + 1):  # the first round warms up, untimed
                    publish(size)
                    swapped("reload", name, lambda: client.reload(name))
                    cold("cold", lambda: publish(size))
                entry = {k: {"median_s": statistics.median(v[1:]), "p90_s": quantile(v[1:], 0.9),
                             "samples_s": v[1:]} for k, v in samples.items()}
                entry["ratio_reload_cold"] = entry["reload"]["median_s"] / entry["cold"]["median_s"]
                entry["ratio_publish_write_cold"] = (entry["publish"]["median_s"]
                                                     / entry["write_cold"]["median_s"])
                results[str(size)] = entry
                log(f"  versions {size} MiB done ({rounds} rounds)")
    finally:
        stop_daemon(daemon)
    return results


def print_versions(versions: Dict[str, Any]) -> None:
    print("\n== New version of an adapter in use: new files -> first acquire of it, touched ==")
    print(f"  {'MiB':>5} {'RELOAD (lease on old held)':>28} {'UNLOAD + cold load':>20} {'ratio':>7}")
    for size, e in versions.items():
        print(f"  {size:>5} {fmt_ms(e['reload']['median_s']):>28} "
              f"{fmt_ms(e['cold']['median_s']):>20} {e['ratio_reload_cold']:7.3f}")
    print("\n== New version held in memory by a trainer -> first acquire of it, touched ==")
    print(f"  {'MiB':>5} {'PUBLISH (lease on old held)':>28} {'write files + cold load':>24} "
          f"{'ratio':>7}")
    for size, e in versions.items():
        print(f"  {size:>5} {fmt_ms(e['publish']['median_s']):>28} "
              f"{fmt_ms(e['write_cold']['median_s']):>24} {e['ratio_publish_write_cold']:7.3f}")
