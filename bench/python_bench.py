#!/usr/bin/env python3
"""python_bench: genomed's Python client against safetensors, in one run.

    python bench/python_bench.py [--quick] [--json FILE] [--keep-tmp] [--no-torch]
    python bench/python_bench.py --hot | --versions [--quick] [--json FILE]
    python bench/python_bench.py --disk [--disk-dir DIR] [--quick] [--json FILE]

Parts 3-5 live in bench/python_hot.py (--hot), bench/python_versions.py
(--versions) and bench/python_cold.py (--disk); this file holds parts 1-2,
the helpers they share and the command line.

Run it with the project venv (``bash scripts/python-env.sh`` prints its path;
it needs numpy, safetensors and torch) after building the C++ tree
(``bash scripts/build.sh``; ``$GENOMED_BUILD_DIR`` picks another build tree).
The installed genomed package is used (scripts/python-env.sh installs this
checkout's python/, the binding of the C++ client, into the venv).

Two parts, both against real genomed daemons (python/tests/genomed_testing.py
``Daemon``: the build tree's genomed and genome-worker, ``--workers 2``):

1. **Time from a name to usable tensors** for F16 adapters of 16, 128 and
   512 MiB (``--quick``: 4 and 16 MiB). "Usable tensors" is a dict
   name -> numpy.ndarray. Two times per sample: *handles* (the dict exists)
   and *touched* (additionally one byte of every 4 KiB page of every tensor
   was read, so every page is mapped and readable; the byte sum is checked to
   be the same in every variant). Variants, interleaved within each round:

   - ``st_load_file``: ``safetensors.numpy.load_file(path)``;
   - ``st_safe_open``: ``safe_open(path, framework="numpy")`` + ``get_tensor``
     of every tensor (safetensors maps the file; numpy tensors are copied out
     of the mapping);
   - ``st_safe_open_pt`` (extra, torch): ``safe_open(framework="pt")`` +
     ``get_tensor`` of every tensor, tensors that stay views of the mapping;
   - ``genomed_cold``: ``acquire`` of an adapter that is not resident (it was
     unloaded, untimed, after the previous sample): the daemon's workers copy
     it from the page cache into the arena; then ``lease.tensors``;
   - ``genomed_resident``: ``acquire`` of a resident adapter on a connection
     that already acquired and touched this load of it (a long-lived server's
     steady state: the client caches the parsed header per load, and the
     pages are already in its page tables);
   - ``genomed_resident_newconn``: ``connect`` + ``acquire`` + views on a new
     connection, which parses the adapter's header and whose fresh mapping of
     the arena faults every page in when it is touched (a new process's first
     use of a resident adapter).

   The page cache holds every file (read once before timing). Medians and
   p90 over the rounds; ratio = genomed / safetensors (< 1: genomed faster).

2. **Memory** of N = 1, 4, 8 processes (``--quick``: 1, 2), each using the
   same 4 adapters of 64 MiB (``--quick``: 8 MiB) and touching every page:
   total PSS (``/proc/PID/smaps_rollup``) of every process involved. genomed:
   the N clients + genomed + its genome-worker processes (the arena is shared
   memory: PSS splits each page among the processes that map it). safetensors:
   the N processes, each with its own copy from ``load_file`` (numpy). Extra:
   N processes with ``safe_open(framework="pt")`` (views of the shared,
   mapped page cache). Children are this script in ``--child`` mode;
   they and the parent synchronise over pipes (imported -> go -> ready ->
   exit), never with sleeps.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python" / "tests"))  # genomed_testing.Daemon

import numpy as np  # noqa: E402

import genomed  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

MiB = 1 << 20
PAGE = 4096
HIDDEN = 4096
MODULES = ("q_proj", "v_proj")

# name -> (rank, layers): F16, hidden 4096, q_proj + v_proj, so each adapter
# holds layers x 2 modules x 2 tensors of rank x 4096 F16 elements.
GEOMETRY = {
    4: (16, 8),
    8: (32, 8),
    16: (64, 8),
    64: (64, 32),
    128: (64, 64),
    512: (256, 64),
}


def fixed_mmap_threshold() -> None:
    """As genome-bench does for its in-process loader: every large allocation
    gets fresh mmap'ed pages, so each load pays page allocation as a real
    (first) load in a server does. Without it glibc raises its mmap threshold
    after the first large free() and later 16 MiB loads would reuse heap
    pages. Applies to every variant in this process."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 1 * MiB)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover
        pass


# ---- helpers ---------------------------------------------------------------------


def touch_numpy(tensors: Dict[str, Any]) -> int:
    """Reads one byte of every 4 KiB page of every tensor (and its last byte);
    returns their sum. Works for numpy arrays."""
    total = 0
    for a in tensors.values():
        b = a.reshape(-1).view(np.uint8)
        total += int(b[::PAGE].sum(dtype=np.uint64)) + int(b[-1])
    return total


def touch_torch(tensors: Dict[str, Any]) -> int:
    import torch
    total = 0
    for t in tensors.values():
        b = t.reshape(-1).view(torch.uint8)
        total += int(b[::PAGE].sum(dtype=torch.int64)) + int(b[-1])
    return total


def read_smaps_rollup(pid: int) -> Dict[str, int]:
    """Pss, Pss_Anon, Pss_File, Pss_Shmem, Rss of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return {k: out.get(k, 0) for k in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")}


def children_of(pid: int) -> List[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return sorted(kids)


def sum_pss(pids: Sequence[int]) -> Dict[str, int]:
    total = {"Rss": 0, "Pss": 0, "Pss_Anon": 0, "Pss_File": 0, "Pss_Shmem": 0}
    for pid in pids:
        for k, v in read_smaps_rollup(pid).items():
            total[k] += v
    return total


def cpu_times() -> Tuple[int, int, int]:
    """(busy, idle, steal) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    steal = v[7] if len(v) > 7 else 0
    return sum(v[:8]) - idle - steal, idle, steal


def fmt_mib(n: float) -> str:
    return f"{n / MiB:,.1f}"


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.3f}" if s < 0.01 else f"{s * 1e3:.2f}" if s < 1 else f"{s * 1e3:.1f}"


def quantile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (p90 of 11 samples = the 10th smallest)."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(np.ceil(q * len(s))) - 1))
    return s[k]


def warm_page_cache(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(8 * MiB):
            pass


def make_adapter(root: Path, name: str, size_mib: int, seed: int) -> Path:
    from genomed_testing import write_fixture
    rank, layers = GEOMETRY[size_mib]
    out = write_fixture(root / name, rank=rank, layers=layers, hidden=HIDDEN, dtype="F16",
                        seed=seed, modules=MODULES)
    weights = out / "adapter_model.safetensors"
    data = rank * HIDDEN * 2 * 2 * len(MODULES) * layers
    assert data == size_mib * MiB, (name, data)
    warm_page_cache(weights)
    return weights


def wait_for_prefault(daemon: Any, timeout: float = 120.0) -> None:
    """genomed commits its arena at start and faults it in on a background
    thread (it logs "arena of ... faulted in"). Timing while that thread runs
    would measure it too, so wait for the log line. This only waits for the
    daemon to be idle before measuring; it synchronises nothing measured."""
    deadline = time.monotonic() + timeout
    while "faulted in" not in daemon.log():
        if daemon.process.poll() is not None:
            raise RuntimeError(f"genomed exited:\n{daemon.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"genomed did not fault its arena in within {timeout} s")
        time.sleep(0.02)


def start_daemon(budget: str, roots: Sequence[Path]) -> Any:
    from genomed_testing import Daemon
    daemon = Daemon(roots=roots, budget=budget, workers=2)
    try:
        wait_for_prefault(daemon)
    except BaseException:
        stop_daemon(daemon)
        raise
    return daemon


def stop_daemon(daemon: Any) -> None:
    try:
        code = daemon.stop()
        if code != 0:
            print(f"warning: genomed exited with {code}:\n{daemon.log()}", file=sys.stderr)
    finally:
        shutil.rmtree(daemon.dir, ignore_errors=True)


# ---- part 1: time from a name to usable tensors ------------------------------------

Sample = Tuple[float, float, int]  # (handles s, touched s, checksum)


def timed(make: Callable[[], Dict[str, Any]], touch: Callable[[Dict[str, Any]], int]) -> Sample:
    t0 = time.perf_counter()
    tensors = make()
    t1 = time.perf_counter()
    checksum = touch(tensors)
    t2 = time.perf_counter()
    del tensors
    return t1 - t0, t2 - t0, checksum


class TimingVariants:
    """One method per variant, each one timed sample. A round calls them in
    order: cold (expects the adapter unloaded, leaves it resident), resident,
    resident on a new connection; then unload() (untimed)."""

    def __init__(self, socket: str, name: str, path: Path) -> None:
        self.socket = socket
        self.name = name
        self.path = str(path)
        self.client = genomed.connect(socket)

    def close(self) -> None:
        self.client.close()

    def _sample(self, make: Callable[[], Dict[str, Any]],
                touch: Callable[[Dict[str, Any]], int]) -> Sample:
        """One timed sample (python_cold.DiskVariants drops the files first)."""
        return timed(make, touch)

    def st_load_file(self) -> Sample:
        return self._sample(lambda: load_file(self.path), touch_numpy)

    def st_safe_open(self) -> Sample:
        def make() -> Dict[str, Any]:
            with safe_open(self.path, framework="numpy") as f:
                return {k: f.get_tensor(k) for k in f.keys()}
        return self._sample(make, touch_numpy)

    def st_safe_open_pt(self) -> Sample:
        def make() -> Dict[str, Any]:
            with safe_open(self.path, framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}
        return self._sample(make, touch_torch)

    def _genomed(self) -> Sample:
        lease = None

        def make() -> Dict[str, Any]:
            nonlocal lease
            lease = self.client.acquire(self.name)
            return lease.tensors

        sample = self._sample(make, touch_numpy)
        assert lease is not None
        lease.release()  # no view is left: the RELEASE goes out now
        return sample

    def genomed_cold(self) -> Sample:
        """Expects the adapter unloaded; leaves it resident (unleased)."""
        return self._genomed()

    def genomed_resident(self) -> Sample:
        """Expects it resident and already acquired on this connection (its
        header is parsed once per load and connection, then cached)."""
        return self._genomed()

    def genomed_resident_newconn(self) -> Sample:
        holder: Dict[str, Any] = {}

        def make() -> Dict[str, Any]:
            holder["client"] = genomed.connect(self.socket)
            holder["lease"] = holder["client"].acquire(self.name)
            return holder["lease"].tensors

        sample = timed(make, touch_numpy)
        holder["lease"].release()
        holder["client"].stats()  # a round trip: the daemon has processed the RELEASE
        holder["client"].close()
        return sample

    def unload(self) -> None:
        """Untimed: make the adapter non-resident (no lease may be left)."""
        outcome = self.client.unload(self.name).outcome
        if outcome != "freed":  # "draining" would mean a lease was left
            raise RuntimeError(f"unload of {self.name}: {outcome}")


def sample_rounds(tv: Any, variants: Sequence[str], rounds: int) -> Dict[str, List[Sample]]:
    """Every variant (a method of `tv`) once as a warm-up (untimed: the
    adapter's arena range gets its first fill, the connection's mapping its
    pages), then `rounds` rounds of every variant in order (interleaved, so
    drift hits all alike), each round ended by tv.unload() (untimed). The
    garbage collector is off during the rounds."""
    samples: Dict[str, List[Sample]] = {v: [] for v in variants}
    for v in variants:
        getattr(tv, v)()
    tv.unload()
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for v in variants:
                samples[v].append(getattr(tv, v)())
            tv.unload()
    finally:
        gc.enable()
    return samples


def run_timing(sizes: Sequence[int], rounds: Dict[int, int], tmp: Path, with_torch: bool,
               log: Callable[[str], None]) -> Dict[str, Any]:
    root = tmp / "timing"
    root.mkdir()
    paths = {}
    for i, size in enumerate(sizes):
        paths[size] = make_adapter(root, f"a{size}m", size, seed=100 + i)
    budget_mib = sum(sizes) + 64 * len(sizes)  # every adapter resident at once, + slack
    daemon = start_daemon(f"{budget_mib}M", [root])
    log(f"timing daemon: pid {daemon.pid}, --budget {budget_mib}M --workers 2")
    variants = ["st_load_file", "st_safe_open"] + (["st_safe_open_pt"] if with_torch else []) + [
        "genomed_cold", "genomed_resident", "genomed_resident_newconn"]
    results: Dict[str, Any] = {}
    try:
        for size in sizes:
            name = f"a{size}m"
            tv = TimingVariants(daemon.socket, name, paths[size])
            try:
                loads_before = tv.client.stats()["loads_started"]
                # Order within a round: cold leaves the adapter resident, resident
                # and newconn use it, then it is unloaded (untimed) for the next cold.
                samples = sample_rounds(tv, variants, rounds[size])
                stats = tv.client.stats()
                if stats["leases_active"] != 0:
                    raise RuntimeError(f"leases_active {stats['leases_active']} after the rounds")
                loads = stats["loads_started"] - loads_before
                if loads != rounds[size] + 1:  # one per cold sample (+ warm-up), no other
                    raise RuntimeError(f"{loads} loads for {rounds[size] + 1} cold acquires")
            finally:
                tv.close()
            checksums = {v: {s[2] for s in samples[v]} for v in variants}
            reference = checksums["st_load_file"]
            for v, c in checksums.items():
                if c != reference or len(c) != 1:
                    raise RuntimeError(f"{size} MiB: byte sums differ: {checksums}")
            entry: Dict[str, Any] = {"file_bytes": paths[size].stat().st_size,
                                     "tensor_bytes": size * MiB, "rounds": rounds[size],
                                     "variants": {}}
            # The daemon's own time per load (its log: probe, reserve, fill by the
            # workers, verify, publish), without the client's round trip and
            # parse: where the cold time goes. The first is the warm-up.
            loads = [float(m) for m in re.findall(
                rf"loaded '{re.escape(name)}' generation \d+: .* in ([0-9.]+) ms", daemon.log())]
            if len(loads) == rounds[size] + 1:
                entry["daemon_load_median_s"] = statistics.median(loads[1:]) / 1e3
            for v in variants:
                h = [s[0] for s in samples[v]]
                t = [s[1] for s in samples[v]]
                entry["variants"][v] = {
                    "handles_median_s": statistics.median(h), "handles_p90_s": quantile(h, 0.9),
                    "touched_median_s": statistics.median(t), "touched_p90_s": quantile(t, 0.9),
                    "handles_s": h, "touched_s": t}
            ratios = {}
            for g in ("genomed_cold", "genomed_resident", "genomed_resident_newconn"):
                for base in ("st_load_file", "st_safe_open", "st_safe_open_pt"):
                    if base not in entry["variants"]:
                        continue
                    gv, bv = entry["variants"][g], entry["variants"][base]
                    ratios[f"{g}/{base}"] = {
                        "touched": gv["touched_median_s"] / bv["touched_median_s"],
                        "handles": gv["handles_median_s"] / bv["handles_median_s"]}
            entry["ratios"] = ratios
            results[str(size)] = entry
            log(f"  {size} MiB done ({rounds[size]} rounds)")
    finally:
        stop_daemon(daemon)
    return results


# ---- part 2: memory ---------------------------------------------------------------


class Children:
    """N copies of this script in --child MODE, driven over their stdin/stdout."""

    def __init__(self, n: int, mode: str, args: Sequence[str]) -> None:
        self.procs: List[subprocess.Popen] = []
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, *args]
        for _ in range(n):
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                               text=True, bufsize=1))

    @property
    def pids(self) -> List[int]:
        return [p.pid for p in self.procs]

    def expect(self, word: str) -> List[str]:
        """Barrier: every child's next line must start with `word`."""
        lines = []
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line.startswith(word):
                raise RuntimeError(f"child {p.pid}: expected '{word}', got {line!r} "
                                   f"(exit code {p.poll()})")
            lines.append(line.strip())
        return lines

    def tell(self, word: str) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(word + "\n")
            p.stdin.flush()

    def finish(self) -> None:
        self.tell("exit")
        for p in self.procs:
            if p.wait(timeout=120) != 0:
                raise RuntimeError(f"child {p.pid} exited with {p.returncode}")

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def child_main(mode: str, socket: Optional[str], names: List[str], files: List[str]) -> int:
    """--child: imported -> (wait go) -> use the 4 adapters, touch -> ready SUM ->
    (wait exit) -> exit. Keeps everything referenced until told to exit."""
    if mode == "st_safe_open_pt":
        import torch  # noqa: F401  (imported before "imported": part of the idle PSS)
    print("imported", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    keep: List[Any] = []
    checksum = 0
    if mode == "genomed":
        client = genomed.connect(socket)
        keep.append(client)
        for name in names:
            lease = client.acquire(name)
            tensors = lease.tensors
            keep += [lease, tensors]
            checksum += touch_numpy(tensors)
    elif mode == "st_load_file":
        for path in files:
            tensors = load_file(path)
            keep.append(tensors)
            checksum += touch_numpy(tensors)
    elif mode == "st_safe_open_pt":
        for path in files:
            with safe_open(path, framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            keep.append(tensors)
            checksum += touch_torch(tensors)
    else:
        raise SystemExit(f"unknown child mode {mode}")
    print(f"ready {checksum}", flush=True)
    if sys.stdin.readline().strip() != "exit":
        return 1
    del keep
    return 0


def run_memory(size_mib: int, ns: Sequence[int], tmp: Path, with_torch: bool,
               log: Callable[[str], None]) -> Dict[str, Any]:
    root = tmp / "memory"
    root.mkdir()
    names = [f"m{i}" for i in range(4)]
    files = [str(make_adapter(root, n, size_mib, seed=200 + i)) for i, n in enumerate(names)]
    data_bytes = 4 * size_mib * MiB
    # The 4 page-rounded ranges (each adapter is its tensors + a small header) fit.
    budget_mib = 4 * size_mib + 4
    daemon = start_daemon(f"{budget_mib}M", [root])
    log(f"memory daemon: pid {daemon.pid}, --budget {budget_mib}M --workers 2")
    out: Dict[str, Any] = {"adapter_mib": size_mib, "adapters": 4, "tensor_bytes": data_bytes,
                           "budget_bytes": budget_mib * MiB, "rows": []}
    try:
        daemon_pids = [daemon.pid] + children_of(daemon.pid)
        out["daemon_idle"] = sum_pss(daemon_pids)
        with genomed.connect(daemon.socket) as c:
            for n in names:
                c.load(n)
            stats = c.stats()
        out["bytes_resident"] = stats["bytes_resident"]
        out["daemon_loaded"] = sum_pss([daemon.pid] + children_of(daemon.pid))
        modes = ["genomed", "st_load_file"] + (["st_safe_open_pt"] if with_torch else [])
        sums = set()
        for n in ns:
            row: Dict[str, Any] = {"n": n}
            for mode in modes:
                kids = Children(n, mode, ["--socket", daemon.socket, "--names", ",".join(names),
                                          "--files", ",".join(files)])
                try:
                    kids.expect("imported")
                    before = sum_pss(kids.pids)
                    kids.tell("go")
                    ready = kids.expect("ready")
                    sums.update(line.split()[1] for line in ready)
                    clients = sum_pss(kids.pids)
                    per_client = [read_smaps_rollup(p)["Pss"] for p in kids.pids]
                    entry: Dict[str, Any] = {"clients_idle": before, "clients": clients,
                                             "per_client_pss": per_client}
                    if mode == "genomed":
                        dpids = [daemon.pid] + children_of(daemon.pid)
                        entry["daemon_pids"] = len(dpids)
                        entry["daemon"] = sum_pss(dpids)
                        entry["total_pss"] = clients["Pss"] + entry["daemon"]["Pss"]
                        # Interpreters' own PSS and the daemon's with nothing loaded
                        # taken away: what the adapters cost.
                        entry["adapter_pss"] = (entry["total_pss"] - before["Pss"]
                                                - out["daemon_idle"]["Pss"])
                    else:
                        entry["total_pss"] = clients["Pss"]
                        entry["adapter_pss"] = clients["Pss"] - before["Pss"]
                    kids.finish()
                except BaseException:
                    kids.kill()
                    raise
                row[mode] = entry
            row["ratio_total"] = row["genomed"]["total_pss"] / row["st_load_file"]["total_pss"]
            row["ratio_adapter"] = (row["genomed"]["adapter_pss"]
                                    / row["st_load_file"]["adapter_pss"])
            out["rows"].append(row)
            log(f"  N = {n} done")
        if len(sums) != 1:
            raise RuntimeError(f"children saw different bytes: {sums}")
    finally:
        stop_daemon(daemon)
    return out


# ---- report -----------------------------------------------------------------------

LABELS = {
    "st_load_file": "safetensors load_file",
    "st_safe_open": "safetensors safe_open+get_tensor (numpy)",
    "st_safe_open_pt": "safetensors safe_open+get_tensor (torch, extra)",
    "genomed_cold": "genomed cold (acquire, not resident)",
    "genomed_resident": "genomed resident (acquire)",
    "genomed_resident_newconn": "genomed resident, new connection",
}


def print_timing(timing: Dict[str, Any]) -> None:
    print("\n== Time from a name to a dict of numpy arrays (page cache warm) ==")
    print("handles: the dict exists; touched: + one byte of every 4 KiB page read. "
          "ms, median (p90).")
    for size, entry in timing.items():
        print(f"\n{size} MiB of tensors ({entry['file_bytes']:,} B file), "
              f"{entry['rounds']} rounds")
        print(f"  {'variant':<50} {'handles':>18} {'touched':>18}")
        for v, r in entry["variants"].items():
            h = f"{fmt_ms(r['handles_median_s'])} ({fmt_ms(r['handles_p90_s'])})"
            t = f"{fmt_ms(r['touched_median_s'])} ({fmt_ms(r['touched_p90_s'])})"
            print(f"  {LABELS[v]:<50} {h:>18} {t:>18}")
            if v == "genomed_cold" and "daemon_load_median_s" in entry:
                label = "  of which the daemon's load (its log), median"
                print(f"  {label:<50} {fmt_ms(entry['daemon_load_median_s']):>18}")
        print("  ratios genomed / safetensors (touched medians; < 1 = genomed faster):")
        for key, r in entry["ratios"].items():
            g, base = key.split("/")
            print(f"    {g:<26} / {base:<16} {r['touched']:8.3f}   (handles {r['handles']:.3f})")


def print_memory(mem: Dict[str, Any]) -> None:
    print(f"\n== Memory: N processes, each using the same 4 x {mem['adapter_mib']} MiB adapters "
          "(every page touched) ==")
    print(f"one copy = {fmt_mib(mem['tensor_bytes'])} MiB of tensors; genomed bytes_resident "
          f"{fmt_mib(mem['bytes_resident'])} MiB; arena (whole budget, committed shared memory) "
          f"{fmt_mib(mem['budget_bytes'])} MiB")
    print(f"genomed + workers PSS: idle {fmt_mib(mem['daemon_idle']['Pss'])} MiB, with the 4 "
          f"adapters loaded and no client {fmt_mib(mem['daemon_loaded']['Pss'])} MiB")
    extra = any("st_safe_open_pt" in r for r in mem["rows"])
    head = (f"  {'N':>2} | {'genomed total PSS':>17} {'(clients+daemon)':>18} | "
            f"{'load_file total':>15} | {'ratio':>5} | {'adapters: genomed':>17} "
            f"{'load_file':>9} {'ratio':>5}")
    if extra:
        head += f" | {'pt mmap total':>13} {'adapters':>8}"
    print("MiB; 'adapters' = total PSS minus the same processes' PSS before they used the "
          "adapters (and minus the idle daemon)")
    print(head)
    for r in mem["rows"]:
        g, s = r["genomed"], r["st_load_file"]
        split = f"({fmt_mib(g['clients']['Pss'])}+{fmt_mib(g['daemon']['Pss'])})"
        line = (f"  {r['n']:>2} | {fmt_mib(g['total_pss']):>17} {split:>18} | "
                f"{fmt_mib(s['total_pss']):>15} | {r['ratio_total']:5.2f} | "
                f"{fmt_mib(g['adapter_pss']):>17} {fmt_mib(s['adapter_pss']):>9} "
                f"{r['ratio_adapter']:5.2f}")
        if extra:
            p = r["st_safe_open_pt"]
            line += f" | {fmt_mib(p['total_pss']):>13} {fmt_mib(p['adapter_pss']):>8}"
        print(line)


# ---- main -------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, N up to 2")
    ap.add_argument("--json", metavar="FILE", help="write every figure and sample as JSON")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the generated adapters")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch (safe_open pt) extras")
    ap.add_argument("--hot", action="store_true",
                    help="only part 3: acquire+release, view building, first acquire, threads")
    ap.add_argument("--versions", action="store_true",
                    help="only part 4: RELOAD of new files against UNLOAD + cold load, "
                         "PUBLISH from memory against writing files + cold load")
    ap.add_argument("--disk", action="store_true",
                    help="only part 5: cold from disk (page cache dropped) and first touch "
                         "(bench/python_cold.py)")
    ap.add_argument("--disk-dir", metavar="DIR", type=Path,
                    help="where --disk writes its adapters (a real disk, not tmpfs; "
                         "default: /tmp, /var/tmp or build/)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--socket", help=argparse.SUPPRESS)
    ap.add_argument("--names", default="", help=argparse.SUPPRESS)
    ap.add_argument("--files", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    fixed_mmap_threshold()
    if args.child:
        return child_main(args.child, args.socket, [n for n in args.names.split(",") if n],
                          [f for f in args.files.split(",") if f])

    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            with_torch = False
    if args.quick:
        sizes, rounds, mem_size, ns = [4, 16], {4: 5, 16: 5}, 8, [1, 2]
    else:
        sizes, rounds, mem_size, ns = [16, 128, 512], {16: 51, 128: 31, 512: 21}, 64, [1, 4, 8]

    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {msg}", file=sys.stderr, flush=True)

    load_start = os.getloadavg()
    cpu_start = cpu_times()
    self_start = os.times()
    tmp = Path(tempfile.mkdtemp(prefix="genomed-pybench-"))
    log(f"adapters in {tmp}; genomed client {genomed.__file__}")
    def only(part: str, run: Callable[[], Dict[str, Any]],
             show: Callable[[Dict[str, Any]], None]) -> int:
        """One part alone (--hot, --versions): run, print, write its JSON."""
        try:
            out = run()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        show(out)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({part: out}, f, indent=1)
        return 0

    if args.hot:
        from python_hot import print_hot, run_hot
        return only("hot", lambda: run_hot(tmp, args.quick, log), print_hot)
    if args.versions:
        from python_versions import print_versions, run_versions
        return only("versions", lambda: run_versions(
            [4, 16] if args.quick else [16, 128], 3 if args.quick else 11, tmp, log),
            print_versions)
    if args.disk:
        from python_cold import print_disk, run_disk
        return only("disk", lambda: run_disk(
            [4, 16] if args.quick else [16, 128, 512], 3 if args.quick else 7, args.disk_dir,
            with_torch, log), print_disk)
    try:
        timing = run_timing(sizes, rounds, tmp, with_torch, log)
        memory = run_memory(mem_size, ns, tmp, with_torch, log)
    finally:
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    cpu_end, self_end = cpu_times(), os.times()
    busy = cpu_end[0] - cpu_start[0]
    total = busy + (cpu_end[1] - cpu_start[1]) + (cpu_end[2] - cpu_start[2])
    hz = os.sysconf("SC_CLK_TCK")
    # CPU time of this run's processes (the bench, its children, the daemons and
    # workers it waited for) vs the whole machine's: the rest is someone else's.
    own = (self_end.user + self_end.system + self_end.children_user + self_end.children_system
           - self_start.user - self_start.system - self_start.children_user
           - self_start.children_system)

    import safetensors
    meta = {"quick": args.quick, "elapsed_s": elapsed, "python": platform.python_version(),
            "numpy": np.__version__, "safetensors": safetensors.__version__,
            "genomed_client": genomed.__version__, "cpus": os.cpu_count(),
            "kernel": platform.release(), "dtype": "F16", "hidden": HIDDEN,
            "modules": list(MODULES), "workers": 2,
            "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
            "machine_busy_cpu_s": busy / hz, "run_cpu_s": own,
            "steal_pct": 100.0 * (cpu_end[2] - cpu_start[2]) / max(1, total)}
    if with_torch:
        import torch
        meta["torch"] = torch.__version__
    print(f"python_bench: {meta['cpus']} CPUs, Python {meta['python']}, numpy {meta['numpy']}, "
          f"safetensors {meta['safetensors']}, {elapsed:.0f} s")
    print(f"machine: load average {load_start[0]:.2f} at start, CPU busy {busy / hz:.1f} s of "
          f"which this run's processes {own:.1f} s, steal {meta['steal_pct']:.1f}%")
    print_timing(timing)
    print_memory(memory)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "timing": timing, "memory": memory}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
