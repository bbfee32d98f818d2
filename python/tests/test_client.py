"""The client against the real daemon: HELLO and the mapping, bytes, views,
metadata, batches, records and typed errors."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import genomed
from genomed_testing import ALL_DTYPES, Daemon, file_tensors, wait_for

NUMPY_DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "F8_E5M2": np.uint8,
    "F8_E4M3": np.uint8, "F8_E8M0": np.uint8, "I16": np.int16, "U16": np.uint16,
    "F16": np.float16, "BF16": np.uint16, "I32": np.int32, "U32": np.uint32,
    "F32": np.float32, "F64": np.float64, "I64": np.int64, "U64": np.uint64,
}


def _open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


def test_connect_exchanges_hello_and_maps_the_arena_read_only(daemon: Daemon) -> None:
    before = _open_fds()
    client = genomed.connect(daemon.socket, client_name="pytest")
    try:
        # Only the socket stays open: the arena descriptor was closed after mmap.
        assert len(_open_fds() - before) == 1
        assert client.arena_bytes == 64 << 20
        assert client.daemon_pid == daemon.pid
        assert client.server.startswith("genomed ")
        arena = client.arena
        assert arena.dtype == np.uint8 and arena.shape == (64 << 20,)
        assert not arena.flags.writeable
        with pytest.raises(ValueError):
            arena[0] = 1
        with pytest.raises(ValueError):
            arena.flags.writeable = True
        start = arena.__array_interface__["data"][0]
        with open("/proc/self/maps") as maps:
            mine = [line for line in maps if line.startswith(f"{start:x}-")]
        assert len(mine) == 1, mine
        lo, hi = (int(x, 16) for x in mine[0].split()[0].split("-"))
        assert hi - lo == 64 << 20 and mine[0].split()[1] == "r--s"  # read-only, shared
        assert repr(client).startswith(f"<genomed.Client {daemon.socket!r}")
        assert "open" in repr(client)
        assert client.health() == genomed.Health(healthy=True, reason="")
    finally:
        client.close()
    assert client.closed and "closed" in repr(client)
    with pytest.raises(genomed.NotConnectedError) as info:
        client.health()
    assert info.value.code == "not_connected" and "closed" in info.value.message


def test_bytes_through_genomed_equal_the_files_for_every_dtype(daemon: Daemon,
                                                               client: genomed.Client) -> None:
    dirs = {dt: daemon.add_adapter(f"dt/{dt}", dtype=dt, rank=3, hidden=40, seed=7)
            for dt in ALL_DTYPES}
    leases = client.acquire_many([f"dt/{dt}" for dt in ALL_DTYPES])
    arena = client.arena
    arena_start = arena.__array_interface__["data"][0]
    for dt, lease in zip(ALL_DTYPES, leases):
        expected = file_tensors(dirs[dt])
        tensors = lease.tensors
        assert list(tensors) == sorted(expected)  # every tensor, sorted by name
        assert lease.dtypes == {name: dt for name in expected}
        for name, (file_dtype, shape, data) in expected.items():
            array = tensors[name]
            assert file_dtype == dt
            assert array.dtype == NUMPY_DTYPES[dt], (dt, array.dtype)
            assert array.shape == shape
            assert array.tobytes() == data, f"{dt} {name}"
            # Zero-copy: a view of the client's arena mapping, 64-byte aligned,
            # inside the lease's range.
            assert np.shares_memory(array, arena)
            address = array.__array_interface__["data"][0]
            assert address % 64 == 0
            assert lease.offset <= address - arena_start
            assert address - arena_start + array.nbytes <= lease.offset + lease.nbytes
            assert not array.flags.writeable
    for lease in leases:
        lease.release()


def test_views_are_read_only(daemon: Daemon, client: genomed.Client) -> None:
    daemon.add_adapter("ro", dtype="F32")
    with client.acquire("ro") as lease:
        for array in lease.tensors.values():
            with pytest.raises(ValueError):
                array[...] = 0
            with pytest.raises(ValueError):
                array.flags.writeable = True
            with pytest.raises(ValueError):
                array.setflags(write=True)
            view = array.reshape(-1)[1:]
            with pytest.raises(ValueError):
                view[0] = 1
        for module in lease.modules:
            with pytest.raises(ValueError):
                module.a[0, 0] = 1


def test_config_is_the_validated_adapter_config(daemon: Daemon, client: genomed.Client) -> None:
    path = daemon.add_adapter("cfg", rank=4, alpha=8)
    with open(path / "adapter_config.json") as f:
        on_disk = json.load(f)
    with client.acquire("cfg") as lease:
        assert lease.config == on_disk
        lease.config["r"] = 99  # a new dict on every access
        assert lease.config == on_disk
        assert lease.lora_r == 4 and lease.lora_alpha == 8.0
        contract = lease.contract
        assert contract["peft_type"] == "LORA" and contract["r"] == 4
        assert contract["lora_alpha"] == 8.0 and contract["bias"] == "none"
        assert contract["task_type"] == "CAUSAL_LM"
        assert contract["target_modules"] == ["q_proj", "v_proj"]


def test_modules_of_a_fixture_adapter(daemon: Daemon, client: genomed.Client) -> None:
    daemon.add_adapter("mods", rank=4, alpha=8, layers=3, hidden=32,
                       modules=("q_proj", "v_proj", "o_proj"))
    with client.acquire("mods") as lease:
        modules = lease.modules
        tensors = lease.tensors
        paths = [f"model.layers.{i}.self_attn.{m}" for i in range(3)
                 for m in ("o_proj", "q_proj", "v_proj")]
        assert [m.path for m in modules] == paths
        for m in modules:
            assert m.kind == "linear"
            assert (m.rank, m.alpha, m.scaling) == (4, 8.0, 2.0)
            assert m.a_name == f"base_model.model.{m.path}.lora_A.weight"
            assert m.b_name == f"base_model.model.{m.path}.lora_B.weight"
            assert m.a is tensors[m.a_name] and m.b is tensors[m.b_name]  # the same views
            assert m.a.shape == (4, 32) and m.b.shape == (32, 4)
            assert m.magnitude is None and m.lora_bias is None
            assert "LoraModule('model.layers." in repr(m) and "scaling=2" in repr(m)
        assert lease.bias_tensors == [] and lease.saved_module_tensors == []
        assert lease.other_tensors == []
        with pytest.raises(dataclasses.FrozenInstanceError):
            modules[0].rank = 8  # type: ignore[misc]


def test_lora_module_field_order() -> None:
    assert [f.name for f in dataclasses.fields(genomed.LoraModule)] == [
        "path", "a", "b", "magnitude", "rank", "alpha", "scaling", "kind", "lora_bias",
        "a_name", "b_name"]


def test_lease_metadata_and_repr(daemon: Daemon, client: genomed.Client) -> None:
    daemon.add_adapter("meta", rank=2, layers=1, hidden=16)
    loaded = client.load("meta")
    lease = client.acquire("meta")
    assert lease.name == "meta" and lease.generation == loaded.generation
    assert lease.nbytes == loaded.bytes and lease.offset % 4096 == 0
    assert lease.id > 0
    text = repr(lease)
    assert text.startswith("<genomed.Lease 'meta'")
    assert "tensors=4 modules=2" in text and "active" in text
    assert lease.shapes == {n: a.shape for n, a in lease.tensors.items()}
    lease.release()
    assert "released" in repr(lease) and lease.released


def test_acquire_many_is_all_or_nothing(daemon: Daemon, client: genomed.Client) -> None:
    daemon.add_adapter("a")
    daemon.add_adapter("b")
    with pytest.raises(genomed.Error) as info:
        client.acquire_many(["a", "b", "missing"])
    assert info.value.code == "not_found"
    assert info.value.message.startswith("'missing': ")
    assert client.stats()["leases_active"] == 0  # same connection: ordered after the reply
    with pytest.raises(genomed.AdapterNameError):
        client.acquire_many(["a", "../b"])
    assert client.stats()["leases_active"] == 0

    first, second, third = client.acquire_many(["a", "b", "a"])
    assert [x.name for x in (first, second, third)] == ["a", "b", "a"]
    assert len({first.id, second.id, third.id}) == 3
    assert (first.offset, first.generation) == (third.offset, third.generation)
    assert client.stats()["leases_active"] == 3
    for lease in (first, second, third):
        lease.release()
    assert client.stats()["leases_active"] == 0

    with pytest.raises(genomed.RequestError) as empty:
        client.acquire_many([])
    assert empty.value.code == "bad_request"
    with pytest.raises(genomed.RequestError):
        client.acquire_many(["a"] * 65)
    with pytest.raises(TypeError):
        client.acquire_many("a")
    with pytest.raises(TypeError):
        client.acquire(b"a")  # type: ignore[arg-type]


def test_views_are_built_once_per_load(daemon: Daemon, client: genomed.Client) -> None:
    # The tensor table is parsed once per copy and its arrays are shared by the
    # leases of one load; a new load (generation) gets its own.
    daemon.add_adapter("cached")
    with client.acquire("cached") as one, client.acquire("cached") as two:
        name = next(iter(one.tensors))
        assert two.tensors[name] is one.tensors[name]
        generation, content = one.generation, one.tensors[name].tobytes()
    del one, two  # their arrays with them: nothing keeps the load
    gc.collect()
    assert client.unload("cached").outcome == "freed"
    with client.acquire("cached") as three:
        assert three.generation > generation
        assert three.tensors[name].tobytes() == content


def test_load_unload_list_stats_health_records(daemon: Daemon, client: genomed.Client) -> None:
    daemon.add_adapter("rec", rank=2)
    daemon.add_adapter("other")
    cold = client.load("rec")
    assert isinstance(cold, genomed.LoadInfo)
    assert (cold.name, cold.was_resident) == ("rec", False) and cold.bytes > 0
    assert len(cold.digest) == 32
    warm = client.load("rec")
    assert warm == genomed.LoadInfo(name="rec", bytes=cold.bytes, generation=cold.generation,
                                    was_resident=True, digest=cold.digest)
    client.load("other")
    listing = client.list()
    assert [a.name for a in listing] == ["other", "rec"]
    assert listing[1] == genomed.AdapterInfo(name="rec", state="ready", bytes=cold.bytes,
                                             leases=0, generation=cold.generation,
                                             idle_ms=listing[1].idle_ms,  # real time passes
                                             digest=cold.digest)
    with client.acquire("rec") as lease:
        arr = lease.tensors[next(iter(lease.tensors))]
        assert [a.leases for a in client.list()] == [0, 1]
        draining = client.unload("rec")
        assert draining == genomed.UnloadInfo(name="rec", outcome="draining", leases=1)
        assert client.list()[1].state == "draining"
        with pytest.raises(genomed.CapacityError) as info:
            client.acquire("rec")
        assert info.value.code == "draining" and info.value.number == 54
        del arr
    assert [a.name for a in client.list()] == ["other"]  # freed with its last lease
    with pytest.raises(genomed.CapacityError) as info:
        client.unload("rec")
    assert info.value.code == "not_loaded" and info.value.number == 53
    assert client.unload("other") == genomed.UnloadInfo(name="other", outcome="freed", leases=0)

    stats = client.stats()
    assert list(stats) == [
        "loads_started", "loads_completed", "loads_failed", "loads_cancelled", "hits", "misses",
        "evictions", "bytes_resident", "bytes_reserved", "bytes_loaded", "admission_waiting", "request_restarts", "budget_bytes",
        "adapters_resident", "adapters_loading", "leases_active", "leases_granted",
        "lease_slots", "slot_hits", "lease_slot_violations",
        "workers_alive", "worker_restarts", "worker_crashes", "worker_timeouts", "queue_depth",
        "load_retries", "quarantined", "breaker_state", "breaker_transitions", "pool_healthy",
        "workers_busy", "pool_saturated", "probes_waiting",
        "adapters_pinned", "bytes_pinned", "idle_unloads", "prefetches_dropped",
        "loads_shared", "shared_copies", "bytes_shared",
        "bad_requests", "releases_ignored", "limits_exceeded", "log_lines_suppressed",
        "permission_denied", "connections_evicted"]
    assert stats["loads_completed"] == 2 and stats["budget_bytes"] == client.arena_bytes
    assert stats["breaker_state"] == "closed" and stats["leases_active"] == 0
    health = client.health()
    assert isinstance(health, genomed.Health) and health.healthy and health.reason == ""
    assert health.saturated is False and stats["pool_saturated"] == 0
    assert bool(health)


def test_typed_errors(daemon: Daemon, client: genomed.Client, tmp_path) -> None:
    with pytest.raises(genomed.AdapterNameError) as info:
        client.acquire("no-such-adapter")
    err = info.value
    assert (err.code, err.number) == ("not_found", 12)
    assert "no-such-adapter" in err.message
    assert str(err).startswith("not_found (12): ") and "check the adapter name" in str(err)
    assert isinstance(err, genomed.Error)

    for bad in ("../escape", "/abs", "a//b", "a/./b", "back\\slash", "x" * 513):
        with pytest.raises(genomed.AdapterNameError) as info:
            client.load(bad)
        assert info.value.code == "invalid_name" and info.value.number == 10, bad

    with pytest.raises(genomed.NotConnectedError) as info:
        genomed.connect(str(tmp_path / "absent.sock"))
    assert info.value.code == "not_connected" and info.value.number == 6
    assert "is the daemon running?" in info.value.message

    with pytest.raises(genomed.RequestError) as info:
        genomed.connect("/tmp/" + "x" * 200)
    assert info.value.code == "bad_request"

    client.health()  # the connection survived every error above


def _daemon_arena_writable(pid: int) -> int:
    """The daemon's read-write arena descriptor, reopened through /proc (a
    stray writer: root, as the tests run, or the daemon's uid after a chmod,
    since the arena's mode is 0400)."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        with open(f"/proc/{pid}/fdinfo/{fd}") as info:
            flags = int(info.read().split("flags:")[1].split()[0], 8)
        if target.startswith("/memfd:genomed-") and flags & os.O_ACCMODE == os.O_RDWR:
            return os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
    raise AssertionError("the daemon holds no read-write arena descriptor")


def test_verify_passes_then_names_a_tensor_whose_bytes_changed(daemon: Daemon,
                                                               client: genomed.Client) -> None:
    daemon.add_adapter("v", rank=4, layers=2, hidden=64)
    with client.acquire("v") as lease:
        lease.verify()
        name = sorted(lease.tensors)[1]
        # The tensor's offset in the arena, from the public views (either client).
        at = lease.tensors[name].ctypes.data - client.arena.ctypes.data
        arena = _daemon_arena_writable(daemon.pid)
        try:
            before = os.pread(arena, 1, at)
            os.pwrite(arena, bytes([before[0] ^ 0x10]), at)
            with pytest.raises(genomed.LayoutError) as info:
                lease.verify()
            assert info.value.code == "layout_invalid" and f"tensor '{name}'" in info.value.message
            os.pwrite(arena, before, at)
        finally:
            os.close(arena)
        lease.verify()
    with pytest.raises(genomed.LeaseReleasedError):
        lease.verify()


def test_checksums_are_the_xxh3_of_each_tensor_and_change_with_the_files(
        daemon: Daemon, client: genomed.Client) -> None:
    xxhash = pytest.importorskip("xxhash")
    daemon.add_adapter("c", rank=4, layers=2, hidden=64, seed=1)
    with client.acquire("c") as lease:
        sums = lease.checksums
        assert sorted(sums) == sorted(lease.tensors)
        assert sums == {n: xxhash.xxh3_64_intdigest(a.tobytes()) for n, a in lease.tensors.items()}
    # Other bytes under the same name, loaded again: other checksums (the vLLM
    # plugin's content identity relies on it).
    client.unload("c")
    daemon.add_adapter("c", rank=4, layers=2, hidden=64, seed=2)
    with client.acquire("c") as lease:
        assert sorted(lease.checksums) == sorted(sums)
        assert all(lease.checksums[n] != sums[n] for n in sums)


def test_a_lost_connection_raises_not_connected(daemon: Daemon) -> None:
    client = genomed.connect(daemon.socket)
    assert daemon.stop() == 0
    with pytest.raises(genomed.NotConnectedError) as info:
        client.health()
    assert info.value.code == "not_connected"
    with pytest.raises(genomed.NotConnectedError):
        client.list()
    with pytest.raises(genomed.NotConnectedError):
        genomed.connect(daemon.socket)


def test_health_reports_a_saturated_pool() -> None:
    """Every worker stuck on a slow probe: health() says saturated (and not
    healthy) with the reason, and recovers once the load is unloaded."""
    with Daemon(workers=1, extra_args=["--worker-fault", "hang@probe:/slow-",
                                       "--load-timeout-ms", "60000",
                                       "--saturated-after-ms", "100"]) as daemon:
        daemon.add_adapter("slow-one")
        client = genomed.connect(daemon.socket)
        control = genomed.connect(daemon.socket)
        loading = threading.Thread(target=lambda: _load_expecting_cancel(client, "slow-one"))
        loading.start()
        wait_for(lambda: control.health().saturated, what="the pool to be saturated")
        health = control.health()
        assert not health.healthy and not bool(health)
        assert "saturated" in health.reason
        assert control.stats()["pool_saturated"] == 1
        assert control.unload("slow-one").outcome == "cancelled"
        loading.join(30.0)
        assert not loading.is_alive()
        wait_for(lambda: control.health() == genomed.Health(healthy=True, reason=""),
                 what="the pool to recover")


def _load_expecting_cancel(client: genomed.Client, name: str) -> None:
    with pytest.raises(genomed.CapacityError) as info:
        client.load(name)
    assert info.value.code == "cancelled"


@pytest.mark.parametrize("kind", ["a regular file", "a directory", "a FIFO"])
def test_a_path_that_is_not_a_socket_is_said_to_be_what_it_is(tmp_path: Path, kind: str) -> None:
    # connect() is refused for each alike; "is the daemon running?" would
    # send the operator after the wrong cause.
    path = tmp_path / "genomed.sock"
    if kind == "a regular file":
        path.write_text("not a socket\n")
    elif kind == "a directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    with pytest.raises(genomed.NotConnectedError) as info:
        genomed.connect(str(path))
    assert (f"'{path}' is {kind}, not a socket: give the path genomed listens on"
            in info.value.message)
    assert "is the daemon running" not in info.value.message


def test_a_missing_socket_asks_whether_the_daemon_runs(tmp_path: Path) -> None:
    with pytest.raises(genomed.NotConnectedError) as info:
        genomed.connect(str(tmp_path / "absent.sock"))
    assert ("No such file or directory (is the daemon running? it creates its socket when it "
            "starts)" in info.value.message)
