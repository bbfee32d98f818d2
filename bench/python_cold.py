"""python_bench --disk (issue 24): what a Python server sees of a cold load from
disk, and of the first touch of a resident adapter's pages.

Two figures, in one run, against a real genomed daemon (``--workers 2``):

1. **Cold from disk.** Before every sample the adapter's files are written
   back and dropped from the page cache (``fsync`` + ``posix_fadvise
   (DONTNEED)``), and ``mincore`` must find none of their pages resident, or
   the run stops: a "cold" sample that read cached pages would flatter
   whichever variant it was. Variants, interleaved in each round: safetensors
   ``load_file`` (numpy), ``safe_open`` numpy + ``get_tensor`` of every tensor,
   ``safe_open`` pt (torch views of the mapped file), and genomed's
   ``acquire`` + ``lease.tensors`` of the adapter, unloaded (untimed) after
   the previous round: the daemon's workers read it from disk (direct I/O when
   the file is not cached: docs/performance.md) into the arena, verify it and
   publish it. Every variant is timed through a first touch of every 4 KiB
   page of every tensor; the byte sums must agree.
2. **First touch of a resident adapter.** A new connection acquires the
   adapter just loaded and touches one byte of every page of its views: the
   time of the touches alone is the cost of faulting the arena's pages into a
   fresh mapping (per 2 MiB where the arena got huge pages, per 4 KiB where the
   host's shmem policy is ``never``). Baseline, same round: the first touch of
   every page of the same file, page-cache warm, through a fresh read-only
   ``mmap`` (4 KiB page-cache faults). The client's ``ShmemPmdMapped`` (from
   ``/proc/self/smaps_rollup``) says how much of the arena it mapped with
   huge pages.

The files live in a directory on a real disk: tmpfs has no page cache to
drop (its pages are the file), so ``/tmp`` is refused where it is tmpfs and
the first of ``/var/tmp``, the build tree is taken (``--disk-dir`` chooses).
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import genomed
from python_bench import (MiB, PAGE, Sample, TimingVariants, fmt_ms, make_adapter, quantile,
                          sample_rounds, start_daemon, stop_daemon, timed, touch_numpy, warm_page_cache)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_MAP_FAILED = ctypes.c_void_p(-1).value


# ---- the page cache ---------------------------------------------------------------


def resident_pages(path: Path) -> Tuple[int, int]:
    """(pages of `path` in the page cache, pages of the file), by mincore on a
    mapping that is never touched (mapping does not read the file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, 0
        pages = (size + PAGE - 1) // PAGE
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, f"mmap of {path} for mincore: {os.strerror(err)}")
        try:
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mincore of {path}: {os.strerror(err)}")
            return sum(v & 1 for v in vec), pages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def drop_from_page_cache(directory: Path) -> None:
    """Writes back and drops every file of `directory` from the page cache,
    then checks that none of their pages is left (a process that maps or locks
    a file keeps its pages: the sample would not be cold)."""
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)  # dirty pages are not dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        left, total = resident_pages(path)
        if left:
            raise RuntimeError(f"{path}: {left} of {total} pages still in the page cache after "
                               "posix_fadvise(DONTNEED) (mapped or locked by a process?)")


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path` (/proc/self/mountinfo: the
    longest mount point that is a prefix of it)."""
    real = str(path.resolve())
    best, kind = "", "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4].replace("\\040", " ")
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, right.split()[0]
    return kind


def pick_disk_dir(candidates: Sequence[Path]) -> Path:
    reasons = []
    for c in candidates:
        if not c.is_dir():
            reasons.append(f"{c}: not a directory")
            continue
        kind = filesystem_type(c)
        if kind in ("tmpfs", "ramfs"):
            reasons.append(f"{c}: {kind} (its pages are the file: nothing to drop)")
            continue
        return Path(tempfile.mkdtemp(prefix="genomed-pybench-disk-", dir=c))
    raise RuntimeError("no directory on a disk for the cold-from-disk adapters: "
                       + "; ".join(reasons) + " (pass --disk-dir DIR)")


def shmem_huge_policy() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/shmem_enabled").read_text()
    except OSError:
        return "unknown"
    chosen = re.search(r"\[(\w+)\]", text)
    return chosen.group(1) if chosen else text.strip()


def shmem_pmd_mapped() -> int:
    """Bytes of shared memory this process maps with huge (PMD) pages."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("ShmemPmdMapped:"):
                return int(line.split()[1]) * 1024
    return 0


# ---- the variants -----------------------------------------------------------------


class DiskVariants(TimingVariants):
    """python_bench's variants, each sample taken with the files dropped from
    the page cache first, plus the first-touch samples. A round runs them in
    the order of COLD + TOUCH: genomed_disk expects the adapter unloaded and
    leaves it resident; the first-touch samples use it resident; unload()
    (untimed) ends the round."""

    def __init__(self, socket: str, name: str, directory: Path) -> None:
        super().__init__(socket, name, directory / "adapter_model.safetensors")
        self.dir = directory
        self.pmd_mapped = 0

    def _sample(self, make: Callable[[], Dict[str, Any]],
                touch: Callable[[Dict[str, Any]], int]) -> Sample:
        drop_from_page_cache(self.dir)
        return timed(make, touch)

    def genomed_disk(self) -> Sample:
        return self._genomed()

    def first_touch_genomed(self) -> Sample:
        """(connect + acquire + views, + the touches, checksum) on a new
        connection: its mapping of the arena is fresh, so every page faults."""
        client = genomed.connect(self.socket)
        try:
            t0 = time.perf_counter()
            lease = client.acquire(self.name)
            tensors = lease.tensors
            t1 = time.perf_counter()
            checksum = touch_numpy(tensors)
            t2 = time.perf_counter()
            self.pmd_mapped = max(self.pmd_mapped, shmem_pmd_mapped())
            del tensors
            lease.release()
            client.stats()  # a round trip: the daemon has processed the RELEASE
        finally:
            client.close()
        return t1 - t0, t2 - t0, checksum

    def first_touch_mmap(self) -> Sample:
        """The file, page-cache warm (read untimed), through a fresh read-only
        mapping: one array per tensor over it, the same touches, over 4 KiB
        page-cache pages."""
        warm_page_cache(Path(self.path))
        with open(self.path, "rb") as fh:
            t0 = time.perf_counter()
            m = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
            n = int.from_bytes(m[:8], "little")
            header = json.loads(m[8:8 + n])
            tensors = {k: np.frombuffer(m, dtype=np.uint8, count=v["data_offsets"][1]
                                        - v["data_offsets"][0], offset=8 + n + v["data_offsets"][0])
                       for k, v in header.items() if k != "__metadata__"}
            t1 = time.perf_counter()
            checksum = touch_numpy(tensors)
            t2 = time.perf_counter()
            del tensors
            m.close()
        return t1 - t0, t2 - t0, checksum


COLD = ["st_load_file", "st_safe_open", "st_safe_open_pt", "genomed_disk"]
TOUCH = ["first_touch_genomed", "first_touch_mmap"]


def _summary(samples: List[Sample]) -> Dict[str, Any]:
    h = [s[0] for s in samples]
    t = [s[1] for s in samples]
    touch = [s[1] - s[0] for s in samples]
    return {"handles_median_s": statistics.median(h), "touched_median_s": statistics.median(t),
            "touched_p90_s": quantile(t, 0.9), "touch_only_median_s": statistics.median(touch),
            "handles_s": h, "touched_s": t}


def run_disk(sizes: Sequence[int], rounds: int, disk_dir: Optional[Path], with_torch: bool,
             log: Callable[[str], None]) -> Dict[str, Any]:
    repo = Path(__file__).resolve().parents[1]
    root = pick_disk_dir([disk_dir] if disk_dir else [Path("/tmp"), Path("/var/tmp"),
                                                     repo / "build"])
    log(f"cold-from-disk adapters in {root} ({filesystem_type(root)})")
    try:
        dirs = {}
        for i, size in enumerate(sizes):
            dirs[size] = make_adapter(root, f"d{size}m", size, seed=300 + i).parent
        budget_mib = sum(sizes) + 64 * len(sizes)
        daemon = start_daemon(f"{budget_mib}M", [root])
        variants = [v for v in COLD if with_torch or v != "st_safe_open_pt"] + TOUCH
        results: Dict[str, Any] = {"dir": str(root), "filesystem": filesystem_type(root),
                                   "shmem_enabled": shmem_huge_policy(), "sizes": {}}
        try:
            for size in sizes:
                name = f"d{size}m"
                dv = DiskVariants(daemon.socket, name, dirs[size])
                try:
                    samples = sample_rounds(dv, variants, rounds)
                finally:
                    dv.close()
                sums = {v: {s[2] for s in samples[v]} for v in variants}
                if any(len(c) != 1 or c != sums["st_load_file"] for c in sums.values()):
                    raise RuntimeError(f"{size} MiB: byte sums differ: {sums}")
                entry: Dict[str, Any] = {"rounds": rounds, "tensor_bytes": size * MiB,
                                         "client_shmem_pmd_mapped": dv.pmd_mapped,
                                         "variants": {v: _summary(samples[v]) for v in variants}}
                vs = entry["variants"]
                entry["ratios"] = {
                    f"genomed_disk/{b}": vs["genomed_disk"]["touched_median_s"]
                    / vs[b]["touched_median_s"] for b in COLD[:-1] if b in vs}
                entry["ratios"]["first_touch_genomed/first_touch_mmap"] = (
                    vs["first_touch_genomed"]["touch_only_median_s"]
                    / vs["first_touch_mmap"]["touch_only_median_s"])
                results["sizes"][str(size)] = entry
                log(f"  {size} MiB from disk done ({rounds} rounds)")
        finally:
            stop_daemon(daemon)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def print_disk(disk: Dict[str, Any]) -> None:
    print(f"\n== Cold from disk ({disk['filesystem']} at {disk['dir']}; page cache dropped and "
          "checked empty before each sample): ms, median (p90), every page touched ==")
    names = {"st_load_file": "load_file", "st_safe_open": "safe_open np",
             "st_safe_open_pt": "safe_open pt", "genomed_disk": "genomed acquire"}
    print(f"  {'MiB':>5} " + " ".join(f"{names[v]:>20}" for v in COLD) + "  genomed/load_file")
    for size, e in disk["sizes"].items():
        vs = e["variants"]
        cells = [f"{fmt_ms(vs[v]['touched_median_s'])} ({fmt_ms(vs[v]['touched_p90_s'])})"
                 if v in vs else "-" for v in COLD]
        print(f"  {size:>5} " + " ".join(f"{c:>20}" for c in cells)
              + f"  {e['ratios']['genomed_disk/st_load_file']:17.3f}")
    print(f"\n== First touch of every page, touches only (arena shmem policy "
          f"[{disk['shmem_enabled']}]) ==")
    print(f"  {'MiB':>5} {'genomed, new connection':>24} {'file mmap, warm':>16} {'ratio':>7} "
          f"{'GB/s genomed':>13} {'huge-mapped':>12}")
    for size, e in disk["sizes"].items():
        g = e["variants"]["first_touch_genomed"]["touch_only_median_s"]
        m = e["variants"]["first_touch_mmap"]["touch_only_median_s"]
        print(f"  {size:>5} {fmt_ms(g):>24} {fmt_ms(m):>16} {g / m:7.3f} "
              f"{e['tensor_bytes'] / g / 1e9:13.2f} {e['client_shmem_pmd_mapped'] / MiB:10.0f} M")
