"""Starts the real genomed (with its real genome-worker processes) for Python tests.

The daemon is launched from the C++ build tree ($GENOMED_BUILD_DIR, default
<repo>/build) on a fresh temporary root and socket. Readiness comes from
genomed's --ready-fd notification, never from polling or sleeping. stop()
sends SIGTERM and checks that the daemon exits cleanly; cleanup() (which the
context manager calls) then removes the temporary directory, keeping the log's
text for log().
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]

# Where Daemon makes its temporary directories: None means tempfile's default
# ($TMPDIR or /tmp). conftest.py points it at a directory of the session's own
# and checks at the end that every test left it empty.
scratch_parent: Optional[Path] = None

# Every Daemon made in this process, in order: conftest.py adds the logs of
# those a failed test started to its report.
started: List["Daemon"] = []


@contextlib.contextmanager
def scratch_session(prefix: str = "genomed-py-session-") -> Iterator[Path]:
    """Points scratch_parent at a fresh directory of its own for the body (a test
    session: conftest.py) and checks at the end that it is empty (each test removed
    what it made), else fails naming what was left. A directory of its own, so
    that the check never sees what concurrent runs put in /tmp."""
    global scratch_parent
    parent = Path(tempfile.mkdtemp(prefix=prefix))
    scratch_parent = parent
    try:
        yield parent
    finally:
        scratch_parent = None
        left = sorted(p.name for p in parent.iterdir())
        shutil.rmtree(parent)
    assert not left, f"tests left these behind in their scratch directory: {left}"


def build_dir() -> Path:
    return Path(os.environ.get("GENOMED_BUILD_DIR", REPO / "build")).resolve()


def binary(name: str) -> Path:
    """Path of a binary of the C++ build (genomed, genomectl, genome-fixture, ...)."""
    path = build_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: build the project first (bash scripts/build.sh) "
            "or point GENOMED_BUILD_DIR at the build tree"
        )
    return path


def write_fixture(out: Path, *, rank: int = 4, layers: int = 2, hidden: int = 64,
                  dtype: str = "F16", alpha: float = 16, seed: int = 1,
                  modules: Sequence[str] = ("q_proj", "v_proj")) -> Path:
    """Writes a deterministic PEFT-layout adapter with genome-fixture."""
    subprocess.run(
        [str(binary("genome-fixture")), "--out", str(out), "--rank", str(rank),
         "--layers", str(layers), "--hidden", str(hidden), "--dtype", dtype,
         "--alpha", repr(alpha), "--seed", str(seed), "--modules", ",".join(modules)],
        check=True, capture_output=True)
    return out


class Daemon:
    """One running genomed. Use as a context manager, or call stop()."""

    def __init__(self, *, roots: Optional[Iterable[Path]] = None, budget: str = "64M",
                 workers: int = 2, extra_args: Sequence[str] = (),
                 base_model: Optional[Path] = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="genomed-py-", dir=scratch_parent))
        self._final_log: Optional[str] = None  # the log's text once cleanup() removed it
        started.append(self)
        self.root = self.dir / "adapters"
        self.root.mkdir()
        self.socket = str(self.dir / "genomed.sock")
        self.log_path = self.dir / "genomed.log"
        args = [str(binary("genomed")), "--socket", self.socket, "--budget", budget,
                "--workers", str(workers), "--worker-path", str(binary("genome-worker"))]
        for root in [self.root, *(roots or [])]:
            args += ["--root", str(root)]
        if base_model is not None:
            args += ["--base-model", str(base_model)]
        args += list(extra_args)
        read_end, write_end = os.pipe()
        args += ["--ready-fd", str(write_end)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            pass_fds=(write_end,))
        os.close(write_end)
        with os.fdopen(read_end, "rb") as ready:
            line = ready.readline()  # EOF (b"") if the daemon exits before it is ready
        if line.strip() != b"ready":
            self.process.wait()
            self.cleanup()
            raise RuntimeError(
                f"genomed did not become ready (exit code {self.process.returncode}):\n"
                + self.log())

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """The daemon's output so far; after cleanup(), all of it."""
        if self._final_log is not None:
            return self._final_log
        return self.log_path.read_text(errors="replace")

    def cleanup(self) -> None:
        """Stops the daemon if it still runs, keeps its log's text for log(),
        and removes the temporary directory (adapters, socket, log). Idempotent."""
        if self._final_log is not None:
            return
        if self.process.poll() is None:
            self.stop()
        self._final_log = self.log()
        shutil.rmtree(self.dir)

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit code (0 when it stopped cleanly)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        return self.process.returncode

    def pause(self) -> None:
        """SIGSTOP, and wait until every thread of the daemon has stopped (the
        signal alone is asynchronous: a request could still be answered)."""
        os.kill(self.pid, signal.SIGSTOP)
        _, status = os.waitpid(self.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            raise RuntimeError(f"genomed did not stop (wait status {status}):\n{self.log()}")

    def resume(self) -> None:
        """SIGCONT after pause()."""
        os.kill(self.pid, signal.SIGCONT)

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc) -> None:
        try:
            code = self.stop()
        finally:
            self.cleanup()
        if exc[0] is None and code != 0:
            raise AssertionError(f"genomed exited with {code}:\n{self.log()}")
        if exc[1] is not None and hasattr(exc[1], "add_note"):
            # The body failed: its report shows the daemon's log (the file is gone).
            exc[1].add_note(f"genomed log (pid {self.pid}):\n{self.log()}")

    def add_adapter(self, name: str, **spec) -> Path:
        """Writes adapter `name` under the daemon's root with genome-fixture."""
        return write_fixture(self.root / name, **spec)


# ---- helpers for the client tests (added with the genomed Python package) ------

ALL_DTYPES = ("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16",
              "BF16", "I32", "U32", "F32", "F64", "I64", "U64")


# 256 KiB of tensors (+ one page of header) each: three fit a 1 MiB budget,
# four do not, so loading another adapter evicts (or reuses the range of) the
# least recently used unleased one.
QUARTER_MIB = dict(rank=16, hidden=1024, layers=2, dtype="F16")


@contextlib.contextmanager
def crowded_daemon(names: Sequence[str], first_seed: int) -> Iterator["Daemon"]:
    """A daemon with a 1 MiB budget serving `names`, QUARTER_MIB each: too
    many to be resident together, so memory pressure is one load away."""
    with Daemon(budget="1M") as d:
        for i, name in enumerate(names):
            d.add_adapter(name, seed=first_seed + i, **QUARTER_MIB)
        yield d


def wait_for(predicate, timeout: float = 30.0, what: str = "a condition") -> None:
    """Calls `predicate` (each call a round trip to the daemon) until it holds.

    For states the daemon reaches asynchronously (a load in flight), never as a
    stand-in for ordering. Raises AssertionError after `timeout` seconds.
    """
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")


MAX_BATCH = 64  # kMaxBatch (ipc/protocol.h): names per ACQUIRE


class RawSession:
    """A connection past HELLO that speaks frames by hand (a 4-byte big-endian
    length, then a msgpack body), for what no client would send. Descriptors
    that come with a frame (HELLO's arena) are closed at once."""

    def __init__(self, path: str) -> None:
        import msgpack

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.send(msgpack.packb({"op": "hello", "version": 1, "client": "raw"}))
        self.read()

    def send(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            data, fds, _, _ = socket.recv_fds(self.sock, n - len(out), 4)
            for fd in fds:
                os.close(fd)
            if not data:
                raise ConnectionError("genomed closed the connection")
            out += data
        return out

    def read(self) -> bytes:
        """The next frame's body."""
        (length,) = struct.unpack(">I", self._exactly(4))
        return self._exactly(length)

    def close(self) -> None:
        self.sock.close()


def open_sockets() -> int:
    """How many sockets this process has open: whether a client closed its
    connection, seen from outside it (either client implementation)."""
    fd_dir = "/proc/self/fd"
    count = 0
    for fd in os.listdir(fd_dir):
        try:
            count += os.readlink(f"{fd_dir}/{fd}").startswith("socket:")
        except OSError:  # the listing's own descriptor, closed meanwhile
            pass
    return count


def file_tensors(adapter_dir: Path) -> dict:
    """name -> (dtype name, shape, raw bytes) of adapter_model.safetensors, as the
    safetensors library reads it: safetensors.numpy where numpy has the dtype,
    safetensors.torch (raw bits) for BF16 and the F8 types."""
    import json as _json

    import safetensors.numpy

    path = Path(adapter_dir) / "adapter_model.safetensors"
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = _json.loads(f.read(header_len))
    dtypes = {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}
    out = {}
    if all(d not in ("BF16", "F8_E5M2", "F8_E4M3", "F8_E8M0") for d in dtypes.values()):
        for name, array in safetensors.numpy.load_file(str(path)).items():
            out[name] = (dtypes[name], tuple(array.shape), array.tobytes())
    else:
        import safetensors.torch  # imports torch: only for the dtypes numpy lacks
        import torch

        for name, tensor in safetensors.torch.load_file(str(path)).items():
            raw = tensor.view(torch.uint16 if tensor.element_size() == 2 else torch.uint8)
            out[name] = (dtypes[name], tuple(tensor.shape), raw.numpy().tobytes())
    return out
