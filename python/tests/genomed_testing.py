"""Starts the real genomed (with its real genome-worker processes) for Python tests.

The daemon is launched from the C++ build tree ($GENOMED_BUILD_DIR, default
<repo>/build) on a fresh temporary root and socket. Readiness comes from
genomed's --ready-fd notification, never from polling or sleeping. stop()
sends SIGTERM and checks that the daemon exits cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]


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
        self.dir = Path(tempfile.mkdtemp(prefix="genomed-py-"))
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
            raise RuntimeError(
                f"genomed did not become ready (exit code {self.process.returncode}):\n"
                + self.log())

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit code (0 when it stopped cleanly)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        return self.process.returncode

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, *exc) -> None:
        code = self.stop()
        if exc[0] is None and code != 0:
            raise AssertionError(f"genomed exited with {code}:\n{self.log()}")

    def add_adapter(self, name: str, **spec) -> Path:
        """Writes adapter `name` under the daemon's root with genome-fixture."""
        return write_fixture(self.root / name, **spec)
