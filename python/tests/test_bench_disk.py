"""bench/python_cold.py (python_bench --disk): its cold samples are only cold
if the page cache really lost the files, so the dropping and its mincore check
are tested here; and a --quick run against the real daemon, so the bench
cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import python_cold  # noqa: E402


@pytest.fixture
def disk_dir(tmp_path: Path):
    """A directory on a disk: pytest's own, unless it is on tmpfs (then one in
    the build tree, which is on the checkout's disk)."""
    if python_cold.filesystem_type(tmp_path) not in ("tmpfs", "ramfs"):
        yield tmp_path
        return
    import shutil
    import tempfile
    build = Path(os.environ.get("GENOMED_BUILD_DIR", BENCH.parent / "build"))
    d = Path(tempfile.mkdtemp(prefix="bench-disk-test-", dir=build))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_read_file_is_resident_and_dropping_empties_the_page_cache(disk_dir: Path) -> None:
    path = disk_dir / "f.bin"
    path.write_bytes(os.urandom(1 << 20))
    path.read_bytes()
    resident, total = python_cold.resident_pages(path)
    assert total == 256 and resident > 0
    python_cold.drop_from_page_cache(disk_dir)
    assert python_cold.resident_pages(path) == (0, 256)


def test_a_mapped_file_keeps_its_pages_and_the_drop_says_so(disk_dir: Path) -> None:
    """DONTNEED leaves pages a process maps: a sample taken then would not be
    cold, so the drop must refuse instead of going on."""
    import mmap
    path = disk_dir / "mapped.bin"
    path.write_bytes(os.urandom(1 << 20))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        assert sum(m[i] for i in range(0, len(m), 4096)) >= 0  # every page mapped here
        with pytest.raises(RuntimeError, match="still in the page cache"):
            python_cold.drop_from_page_cache(disk_dir)


def test_tmpfs_is_refused_with_the_reason() -> None:
    shm = Path("/dev/shm")
    assert python_cold.filesystem_type(shm) == "tmpfs"
    with pytest.raises(RuntimeError, match=r"/dev/shm: tmpfs .*--disk-dir"):
        python_cold.pick_disk_dir([shm])


def test_quick_disk_run_reports_every_variant(disk_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "disk.json"
    subprocess.run([sys.executable, str(BENCH / "python_bench.py"), "--disk", "--quick",
                    "--disk-dir", str(disk_dir), "--json", str(out)],
                   check=True, capture_output=True, text=True, timeout=600)
    disk = json.loads(out.read_text())["disk"]
    assert set(disk["sizes"]) == {"4", "16"}
    for entry in disk["sizes"].values():
        assert {"st_load_file", "st_safe_open", "genomed_disk", "first_touch_genomed",
                "first_touch_mmap"} <= set(entry["variants"])
        assert entry["ratios"]["genomed_disk/st_load_file"] > 0
    assert not any(disk_dir.glob("genomed-pybench-disk-*"))  # the adapters are removed
