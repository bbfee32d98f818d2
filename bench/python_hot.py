"""python_bench --hot (issue 22): the per-request path of a resident adapter
from Python (the binding) against the C++ client and a raw socket, in one run.
Run through bench/python_bench.py --hot; docs/performance.md explains it."""

from __future__ import annotations

import ctypes
import time
from pathlib import Path
from typing import Any, Callable, Dict

import genomed
from python_bench import quantile, start_daemon, stop_daemon


# ---- part 3 (--hot): the per-request path of a resident adapter --------------------

HOT_LAYERS, HOT_MODULES = 32, ("q_proj", "k_proj", "v_proj", "o_proj")  # 256 tensors (7B-like)


class _CClient:
    """The C++ client through its C ABI (libgenomed-client.so of the build
    tree), for the C++ side of the same measures in the same run. ctypes adds
    ~0.3-1 us per call, which is counted: it makes the C++ figures slower."""

    def __init__(self, socket: str) -> None:
        from genomed_testing import build_dir
        lib = ctypes.CDLL(str(build_dir() / "libgenomed-client.so"))
        lib.genomed_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p,
                                        ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
        lib.genomed_acquire.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64,
                                        ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
        lib.genomed_lease_release.argtypes = [ctypes.c_void_p]
        lib.genomed_client_close.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.err = ctypes.create_string_buffer(1100)
        self.client = ctypes.c_void_p()
        rc = lib.genomed_connect(socket.encode(), None, ctypes.byref(self.client), self.err)
        if rc != 0:
            raise RuntimeError(f"C connect failed: {rc}")

    def acquire(self, name: bytes) -> ctypes.c_void_p:
        lease = ctypes.c_void_p()
        rc = self.lib.genomed_acquire(self.client, name, -1, ctypes.byref(lease), self.err)
        if rc != 0:
            raise RuntimeError(f"C acquire failed: {rc}")
        return lease

    def release(self, lease: ctypes.c_void_p) -> None:
        self.lib.genomed_lease_release(lease)

    def close(self) -> None:
        self.lib.genomed_client_close(self.client)


def _raw_health_round_trips(socket_path: str, n: int) -> float:
    """Round trips per second of HELLO'd raw-socket HEALTH requests (msgpack,
    4-byte big-endian length prefix as docs/protocol.md), one thread."""
    import socket as socketlib
    import struct

    import msgpack
    s = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    s.connect(socket_path)

    def call(req: Dict[str, Any]) -> None:
        body = msgpack.packb(req)
        s.sendall(struct.pack(">I", len(body)) + body)
        head = b""
        while len(head) < 4:
            head += s.recv(4 - len(head))
        (length,) = struct.unpack(">I", head)
        got = 0
        while got < length:
            got += len(s.recv(min(65536, length - got)))
    call({"op": "hello", "version": 1, "client": "raw-bench"})
    t0 = time.perf_counter()
    for _ in range(n):
        call({"op": "health"})
    rate = n / (time.perf_counter() - t0)
    s.close()
    return rate


def run_hot(tmp: Path, quick: bool, log: Callable[[str], None]) -> Dict[str, Any]:
    from genomed_testing import write_fixture
    import threading
    root = tmp / "hot"
    root.mkdir()
    write_fixture(root / "hot", rank=16, layers=HOT_LAYERS, hidden=256, dtype="BF16",
                  seed=7, modules=HOT_MODULES)
    daemon = start_daemon("256M", [root])
    n = 2000 if quick else 20000
    out: Dict[str, Any] = {"client": genomed.__file__}
    try:
        with genomed.connect(daemon.socket) as c:
            with c.acquire("hot") as lease:
                out["tensors"] = len(lease.tensors)
            # acquire + release of a resident adapter (through a lease slot if the client has them)
            xs = []
            for _ in range(n):
                t0 = time.perf_counter()
                lease = c.acquire("hot")
                lease.release()
                xs.append(time.perf_counter() - t0)
            out["acquire_release_p50_us"] = quantile(xs, 0.5) * 1e6
            out["acquire_release_p90_us"] = quantile(xs, 0.9) * 1e6
            def views_p50_us() -> float:
                xs = []
                for _ in range(n // 10):
                    lease = c.acquire("hot")
                    t0 = time.perf_counter()
                    views = lease.tensors
                    xs.append(time.perf_counter() - t0)
                    del views
                    lease.release()
                return quantile(xs, 0.5) * 1e6
            # building the views of every tensor of a fresh lease
            out["views_p50_us"] = views_p50_us()
            # the same while another lease of the load and its views live (a
            # server with requests in flight): the views are cached per load
            held = c.acquire("hot")
            held_views = held.tensors
            out["views_while_held_p50_us"] = views_p50_us()
            del held_views
            held.release()
            # 16 threads, one client, one adapter
            per = n // 4
            barrier = threading.Barrier(17)

            def worker() -> None:
                barrier.wait()
                for _ in range(per):
                    lease = c.acquire("hot")
                    lease.release()
            threads = [threading.Thread(target=worker) for _ in range(16)]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            out["threads16_per_s"] = 16 * per / (time.perf_counter() - t0)
        out["raw_round_trips_per_s"] = _raw_health_round_trips(daemon.socket, n // 4)
        # the first acquire on a new connection: Python vs the C++ client (C ABI)
        rounds = 30 if quick else 200
        py, cc = [], []
        for _ in range(rounds):
            with genomed.connect(daemon.socket) as c2:
                t0 = time.perf_counter()
                with c2.acquire("hot") as lease:
                    py.append(time.perf_counter() - t0)
            cpp = _CClient(daemon.socket)
            t0 = time.perf_counter()
            h = cpp.acquire(b"hot")
            cc.append(time.perf_counter() - t0)
            cpp.release(h)
            cpp.close()
        out["first_acquire_p50_us"] = quantile(py, 0.5) * 1e6
        out["first_acquire_cpp_p50_us"] = quantile(cc, 0.5) * 1e6
        cpp = _CClient(daemon.socket)
        h = cpp.acquire(b"hot")
        cpp.release(h)
        xs = []
        for _ in range(n):
            t0 = time.perf_counter()
            h = cpp.acquire(b"hot")
            cpp.release(h)
            xs.append(time.perf_counter() - t0)
        cpp.close()
        out["acquire_release_cpp_p50_us"] = quantile(xs, 0.5) * 1e6
    finally:
        stop_daemon(daemon)
    return out


def print_hot(hot: Dict[str, Any]) -> None:
    print(f"\nhot path ({hot['tensors']} tensors, BF16, resident; client {hot['client']}):")
    for key, value in hot.items():
        if key not in ("tensors", "client"):
            print(f"  {key:32s} {value:12.2f}")
    print(f"  16 threads / raw round trips     {hot['threads16_per_s'] / hot['raw_round_trips_per_s']:12.1f}x")
