"""The binding of the C++ client (genomed._native_client over genomed._native):
the promises that are its own (docs/python-binding.md). The rest of
python/tests tests the same package through its public API."""

from __future__ import annotations

import gc
import sys
import threading
from typing import Iterator

import pytest

import genomed
from genomed import _native_client as native
from genomed_testing import ALL_DTYPES, Daemon, file_tensors, wait_for


@pytest.fixture
def nclient(daemon: Daemon) -> Iterator[native.Client]:
    with native.connect(daemon.socket) as c:
        yield c


def test_views_are_zero_copy_read_only_and_hold_the_file_bytes(daemon: Daemon,
                                                                nclient: native.Client) -> None:
    for i, dtype in enumerate(ALL_DTYPES):
        name = f"d-{dtype.lower()}"
        expected = file_tensors(daemon.add_adapter(name, dtype=dtype, seed=10 + i, rank=2,
                                                   hidden=16))
        with nclient.acquire(name) as lease:
            arena = nclient.arena
            lo, hi = arena.ctypes.data, arena.ctypes.data + arena.nbytes
            assert lease.dtypes == {n: d for n, (d, _, _) in expected.items()}
            for tname, array in lease.tensors.items():
                assert not array.flags.writeable
                assert lo <= array.ctypes.data and array.ctypes.data + array.nbytes <= hi
                d, shape, raw = expected[tname]
                assert array.shape == tuple(shape) and array.tobytes() == raw, (name, tname)
                with pytest.raises(ValueError):
                    array[...] = 0


def test_an_array_keeps_its_lease_until_it_is_collected(daemon: Daemon,
                                                          nclient: native.Client) -> None:
    daemon.add_adapter("kept")
    observer = genomed.connect(daemon.socket)
    try:
        lease = nclient.acquire("kept")
        name, array = next(iter(lease.tensors.items()))
        before = array.tobytes()
        lease.release()
        assert lease.released
        with pytest.raises(genomed.LeaseReleasedError):
            lease.tensors
        # The array's base holds the C++ lease: the daemon must keep the memory.
        assert observer.unload("kept").outcome == "draining"
        assert array.tobytes() == before
        del array
        gc.collect()
        # The last view is gone: the lease ended (or went back to its slot,
        # which the draining adapter wants back), so the adapter is freed.
        assert [a.name for a in observer.list() if a.name == "kept"] == []
    finally:
        observer.close()


def test_views_are_shared_by_leases_of_one_load_while_one_lives(
        daemon: Daemon, nclient: native.Client) -> None:
    daemon.add_adapter("shared")
    with nclient.acquire("shared") as one, nclient.acquire("shared") as two:
        assert one.generation == two.generation
        assert one.tensors is two.tensors  # cached per (generation, offset)
    with nclient.acquire("shared") as three:
        assert three.tensors  # rebuilt: nothing kept the old ones


def test_to_torch_gives_bf16_and_float8_their_dtypes(daemon: Daemon,
                                                     nclient: native.Client) -> None:
    torch = pytest.importorskip("torch")
    daemon.add_adapter("bf", dtype="BF16")
    daemon.add_adapter("f8", dtype="F8_E4M3", seed=2)
    with nclient.acquire("bf") as bf, nclient.acquire("f8") as f8:
        assert {t.dtype for t in bf.to_torch().values()} == {torch.bfloat16}
        assert {t.dtype for t in f8.to_torch().values()} == {torch.float8_e4m3fn}
        for name, t in bf.to_torch().items():
            assert t.data_ptr() == bf.tensors[name].ctypes.data  # zero-copy


def test_errors_are_the_packages_with_code_number_and_hint(daemon: Daemon,
                                                           nclient: native.Client) -> None:
    with pytest.raises(genomed.AdapterNameError) as info:
        nclient.acquire("missing")
    assert info.value.code == "not_found" and info.value.number > 0 and info.value.hint
    with pytest.raises(genomed.NotConnectedError):
        native.connect(daemon.socket + ".absent")


def test_waiting_calls_let_other_threads_run(daemon: Daemon) -> None:
    # A paused daemon answers nothing, so health() waits in C++. Another
    # thread sees the main thread inside it and only then resumes the daemon:
    # that thread runs only if the wait released the GIL (otherwise health()
    # would time out after 30 s, the thread still waiting for the GIL).
    c = native.connect(daemon.socket, timeout=30.0)
    main = threading.get_ident()

    def in_health() -> bool:
        frame = sys._current_frames().get(main)
        return frame is not None and frame.f_code.co_name == "health"

    def resume_when_waiting() -> None:
        wait_for(in_health, what="the main thread to wait in health()")
        daemon.resume()

    daemon.pause()
    t = threading.Thread(target=resume_when_waiting)
    try:
        t.start()
        assert c.health().healthy
    finally:
        t.join()
        daemon.resume()
        c.close()
