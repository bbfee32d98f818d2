"""`mypy --strict` on the package's typed surface: its public modules, the
stubs of the extension (genomed/_native.pyi, written by hand after
python/src/native.cc) and a user's program (examples/typed_client.py).
mypy is pinned in requirements-test.txt. A second run checks that the types
are really consulted: a program that misuses the API must be rejected (if
the stubs or py.typed went missing, everything would be Any and pass)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest
from mypy import api as mypy_api

PYTHON = Path(__file__).resolve().parents[1]
CHECKED = ["genomed/__init__.py", "genomed/_native_client.py", "genomed/_native.pyi",
           "genomed/types.py", "genomed/_errors.py", "examples/typed_client.py"]


def run_mypy(cache: Path, files: List[str]) -> Tuple[str, int]:
    # --follow-imports=silent: the pure-Python _wire.py/_layout.py (retired
    # with the switch to the binding) are followed for their types but not
    # reported (msgpack has no stubs).
    out, err, status = mypy_api.run(["--strict", "--follow-imports=silent", "--no-error-summary",
                                     "--cache-dir", str(cache),
                                     *files])
    return out + err, status


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def test_the_stubs_and_a_typed_user_pass_mypy_strict(cache: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PYTHON)  # the package as in this checkout, not the installed copy
    out, status = run_mypy(cache, CHECKED)
    assert status == 0, out


def test_mypy_rejects_a_misuse_of_the_typed_api(cache: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "misuse.py"
    user.write_text(
        "import genomed\n"
        "from genomed import _native\n"
        "def f(socket: str) -> int:\n"
        "    with genomed.connect(socket) as c, c.acquire('a', priority=3) as lease:\n"
        "        n: int = lease.tensors\n"
        "        s: str = _native.NativeClient.connect(socket, 'x', 1.0, 1.0, 1.0).arena_bytes\n"
        "        return n\n")
    monkeypatch.chdir(PYTHON)
    out, status = run_mypy(cache, ["genomed/_native.pyi", str(user)])
    assert status == 1, out
    # one finding per misuse: the package's hints (priority, tensors) and the stubs' (arena_bytes)
    assert out.count("misuse.py:4:") == 1 and "priority" in out, out
    assert out.count("misuse.py:5:") == 1 and "Dict[str, ndarray" in out.replace("dict", "Dict"), out
    assert out.count("misuse.py:6:") == 1 and '"int"' in out, out
