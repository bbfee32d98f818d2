"""The plugin's parts that need no vLLM engine: the entry point and its
no-op without GENOMED_SOCKET, the identity format, the HTTP statuses of
genomed's error families, and the connection surviving a restarted daemon."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import subprocess
import sys
import types
from http import HTTPStatus
from importlib import metadata

import genomed
import genomed_vllm
import pytest
from genomed_testing import Daemon, wait_for
from genomed_vllm import admission, errors, identity, server
from genomed_vllm.errors import GenomedLoRAError
from genomed_vllm.resolver import GenomedResolver, resolve
from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry
from vllm.utils.counter import AtomicCounter

import vllm_fixtures
from vllm_fixtures import leases

PROBE = """
from vllm.plugins import load_general_plugins
from vllm.lora.resolver import LoRAResolverRegistry
from vllm.lora.worker_manager import WorkerLoRAManager
load_general_plugins()
print(sorted(LoRAResolverRegistry.get_supported_resolvers()),
      hasattr(WorkerLoRAManager, "_genomed_original_load_adapter"))
"""


def plugin_state(env) -> str:
    """What vLLM's own plugin loading does in a fresh process with `env`."""
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_vllm_loads_the_plugin_through_its_entry_point_and_it_is_off_without_the_socket(
        daemon):
    points = metadata.entry_points(group="vllm.general_plugins")
    assert [p.value for p in points if p.name == "genomed"] == ["genomed_vllm:register"]
    off = {k: v for k, v in os.environ.items() if k != genomed_vllm.ENV_SOCKET}
    assert plugin_state(off) == "[] False"
    assert plugin_state(dict(off, GENOMED_SOCKET=daemon.socket)) == "['genomed'] True"


def test_lora_paths_name_genomed_adapters_and_nothing_else():
    ref = identity.AdapterRef("team/a@b", "0123456789abcdef0123456789abcdef")
    assert identity.parse(ref.lora_path) == ref
    assert identity.parse("/srv/adapters/a") is None
    assert identity.parse("org/repo") is None
    for bad in ("genomed://a", "genomed://@0123456789abcdef0123456789abcdef",
                "genomed://a@xyz", "genomed://a@0123456789ABCDEF0123456789ABCDEF"):
        with pytest.raises(ValueError):
            identity.parse(bad)


@pytest.mark.parametrize("error, status", [
    (genomed.AdapterNameError("not_found", "m"), HTTPStatus.NOT_FOUND),
    (genomed.AdapterNameError("invalid_name", "m"), HTTPStatus.BAD_REQUEST),
    (genomed.AdapterFileError("st_header_invalid_json", "m"), HTTPStatus.UNPROCESSABLE_ENTITY),
    (genomed.AdapterContractError("incompatible_base_model", "m"),
     HTTPStatus.UNPROCESSABLE_ENTITY),
    (genomed.LayoutError("layout_invalid", "m"), HTTPStatus.UNPROCESSABLE_ENTITY),
    (genomed.CapacityError("too_large", "m"), HTTPStatus.INSUFFICIENT_STORAGE),
    (genomed.CapacityError("no_space", "m"), HTTPStatus.SERVICE_UNAVAILABLE),
    (genomed.CapacityError("draining", "m"), HTTPStatus.SERVICE_UNAVAILABLE),
    (genomed.WorkerError("quarantined", "m"), HTTPStatus.SERVICE_UNAVAILABLE),
    (genomed.NotConnectedError("not_connected", "m"), HTTPStatus.SERVICE_UNAVAILABLE),
    (genomed.InternalError("internal", "m"), HTTPStatus.BAD_GATEWAY),
])
def test_each_error_family_gets_a_status_and_keeps_genomeds_code_and_message(error, status):
    e = errors.from_genomed("a", error)
    assert e.http_status == status and e.code == error.code
    assert f"'a' from genomed: {error.code}: m" in e.message
    if error.hint:
        assert error.hint in e.message


def test_a_restarted_daemon_is_reconnected_to_and_a_daemon_down_is_503(tmp_path, fixtures):
    link = tmp_path / "genomed.sock"  # the socket path vLLM is given, across restarts
    root = fixtures["plain"].parent
    with Daemon(roots=[root]) as first:
        link.symlink_to(first.socket)
        ref = resolve("plain", str(link))
    with Daemon(roots=[root]) as second:
        link.unlink()
        link.symlink_to(second.socket)
        # This thread's connection went with the first daemon: the call reconnects.
        assert resolve("plain", str(link)) == ref  # same content, same identity
    with pytest.raises(GenomedLoRAError) as info:  # genomed down
        resolve("plain", str(link))
    assert info.value.code == "not_connected"
    assert info.value.http_status == HTTPStatus.SERVICE_UNAVAILABLE


class _Other(LoRAResolver):
    async def resolve_lora(self, base_model_name, lora_name):  # type: ignore[no-untyped-def]
        return None


def test_an_unknown_name_steps_aside_for_other_resolvers_only(daemon):
    ours = GenomedResolver(daemon.socket)
    before = dict(LoRAResolverRegistry.resolvers)
    try:
        LoRAResolverRegistry.resolvers.clear()
        LoRAResolverRegistry.register_resolver("genomed", ours)
        with pytest.raises(GenomedLoRAError) as info:
            asyncio.run(ours.resolve_lora("base", "no-such-adapter"))
        assert info.value.code == "not_found"
        LoRAResolverRegistry.register_resolver("other", _Other())
        assert asyncio.run(ours.resolve_lora("base", "no-such-adapter")) is None
        # Other errors are still genomed's to tell.
        with pytest.raises(GenomedLoRAError) as info:
            asyncio.run(ours.resolve_lora("base", "dora"))
        assert info.value.code == "vllm_refused"
        found = asyncio.run(ours.resolve_lora("base", "plain"))
        assert found.lora_path.startswith("genomed://plain@") and found.lora_name == "plain"
    finally:
        LoRAResolverRegistry.resolvers.clear()
        LoRAResolverRegistry.resolvers.update(before)


def test_a_wrong_base_model_and_a_full_budget_reach_vllm_with_genomeds_code(tmp_path, fixtures):
    # genomed --base-model another model: the adapter (hidden 64) does not fit it.
    other = vllm_fixtures.write_base(tmp_path / "other", dict(
        vllm_fixtures.LLAMA, hidden_size=128, intermediate_size=256))
    with Daemon(roots=[fixtures["plain"].parent], base_model=other) as daemon:
        with pytest.raises(GenomedLoRAError) as info:
            resolve("plain", daemon.socket)
    assert info.value.code == "incompatible_base_model"
    assert info.value.http_status == HTTPStatus.UNPROCESSABLE_ENTITY
    # An adapter larger than genomed's whole budget.
    with Daemon(budget="1M") as daemon:
        daemon.add_adapter("big", rank=64, layers=8, hidden=1024, dtype="F32")
        with pytest.raises(GenomedLoRAError) as info:
            resolve("big", daemon.socket)
    assert info.value.code == "too_large"
    assert info.value.http_status == HTTPStatus.INSUFFICIENT_STORAGE
    assert "--budget" in info.value.message  # genomed's hint


class _Engine:
    """vLLM's engine client as the plugin calls it: records adds and removals."""

    def __init__(self) -> None:
        self.added: list = []
        self.removed: list = []
        self.removal = asyncio.Event()

    async def add_lora(self, lora: LoRARequest) -> bool:
        self.added.append(lora.lora_int_id)
        return True

    async def remove_lora(self, lora_int_id: int) -> bool:
        self.removed.append(lora_int_id)
        self.removal.set()
        return True


class _Serving:
    """What admission's wrapper of vLLM's _check_model reads of a serving object."""

    def __init__(self, registered: dict) -> None:
        self.models = types.SimpleNamespace(lora_requests=registered, engine_client=_Engine(),
                                            lora_id_counter=AtomicCounter(100),
                                            lora_resolver_lock=collections.defaultdict(
                                                asyncio.Lock))


async def _passes(self, request):  # type: ignore[no-untyped-def]
    return None  # vLLM's own _check_model found nothing wrong


def test_admission_holds_a_lease_until_the_requests_task_ends_and_fails_alone(
        monkeypatch, fixtures):
    check = admission._wrap(_passes)
    with Daemon(roots=[fixtures["plain"].parent]) as daemon, \
            genomed.connect(daemon.socket) as client:
        ref = resolve("plain", daemon.socket)
        named = {"plain": LoRARequest("plain", 7, ref.lora_path),
                 "dir": LoRARequest("dir", 8, str(fixtures["plain"]))}
        serving = _Serving(named)
        monkeypatch.setenv(genomed_vllm.ENV_SOCKET, daemon.socket)  # admission's genomed

        async def request(model: str) -> int:
            assert await check(serving, types.SimpleNamespace(model=model)) is None
            return leases(client).get("plain", 0)  # while the request's task runs

        assert asyncio.run(request("plain")) == 1
        wait_for(lambda: leases(client)["plain"] == 0, what="the request's lease to end")
        # Not genomed's adapters, and base models, pass untouched.
        assert asyncio.run(request("dir")) == 0
        assert asyncio.run(request("base")) == 0
        # A name genomed does not have any more: only this request fails.
        gone = LoRARequest("gone", 9, identity.AdapterRef("gone", "0" * 32).lora_path)
        serving.models.lora_requests["gone"] = gone
        with pytest.raises(GenomedLoRAError) as info:
            asyncio.run(request("gone"))
        assert info.value.code == "not_found"
        assert info.value.http_status == HTTPStatus.NOT_FOUND
        assert leases(client)["plain"] == 0
    serving.models.lora_requests["plain"] = named["plain"]
    with pytest.raises(GenomedLoRAError) as info:  # genomed down
        asyncio.run(request("plain"))
    assert info.value.code == "not_connected"


@contextlib.contextmanager
def _registered_live(monkeypatch, fixtures):
    """A genomed with adapter 'live' (plain's files), and a serving object
    that registered it under id 7; admission asks that genomed."""
    with Daemon(roots=[fixtures["plain"].parent]) as daemon, \
            genomed.connect(daemon.socket) as client:
        shutil.copytree(fixtures["plain"], daemon.root / "live")
        old = resolve("live", daemon.socket)
        serving = _Serving({"live": LoRARequest("live", 7, old.lora_path)})
        monkeypatch.setenv(genomed_vllm.ENV_SOCKET, daemon.socket)
        yield daemon, client, serving, old


def _reload_next_version(daemon, client, fixtures) -> genomed.ReloadInfo:
    """'live' gets other files (rslora's) and genomed swaps them in."""
    shutil.rmtree(daemon.root / "live")
    shutil.copytree(fixtures["rslora"], daemon.root / "live")
    return client.reload("live")


def test_admission_serves_a_reloaded_version_under_a_new_identity(monkeypatch, fixtures):
    """A RELOAD swaps new content in under a name vLLM's server registered:
    the next request registers the new identity (new lora_int_id and path),
    so it is served the new version and vLLM reuses nothing built for the
    old one (vllm #30931), while a request in flight keeps the old version."""
    check = admission._wrap(_passes)
    with _registered_live(monkeypatch, fixtures) as (daemon, client, serving, old):
        in_flight = client.acquire("live")
        info = _reload_next_version(daemon, client, fixtures)
        assert info.previous_digest == old.digest != info.digest

        async def request() -> LoRARequest:
            assert await check(serving, types.SimpleNamespace(model="live")) is None
            held = [a for a in client.list() if a.name == "live"][0]
            assert held.leases == 1 and held.digest == info.digest  # this request's
            return serving.models.lora_requests["live"]

        new = asyncio.run(request())
        assert new.lora_path == f"genomed://live@{info.digest}"
        assert new.lora_int_id not in (7, None)
        assert asyncio.run(request()) is new  # registered once
        assert in_flight.digest == old.digest  # the request in flight kept its version
        in_flight.release()
        wait_for(lambda: leases(client)["live"] == 0, what="the requests' leases to end")


def test_a_replaced_identity_leaves_vllms_engine_once_no_request_in_flight_may_use_it(
        monkeypatch, fixtures):
    """After a RELOAD the name is registered under its new identity; the old
    one is removed from vLLM's engine (ending the worker's lease on the old
    version) only when the request admitted with it has ended: removed
    earlier, the engine would build it again for that request inside an
    engine step, where genomed's new content fails it (content_changed)."""
    check = admission._wrap(_passes)
    with _registered_live(monkeypatch, fixtures) as (daemon, client, serving, _):
        engine = serving.models.engine_client

        async def request(running: asyncio.Event, end: asyncio.Event) -> None:
            assert await check(serving, types.SimpleNamespace(model="live")) is None
            running.set()
            await end.wait()  # the engine runs the request

        async def scenario() -> None:
            running, end = asyncio.Event(), asyncio.Event()
            first = asyncio.create_task(request(running, end))
            await running.wait()
            info = await asyncio.to_thread(_reload_next_version, daemon, client, fixtures)
            done = asyncio.Event()
            done.set()
            await asyncio.create_task(request(asyncio.Event(), done))  # the next request
            new = serving.models.lora_requests["live"]
            assert new.lora_path == f"genomed://live@{info.digest}"
            assert engine.added == [new.lora_int_id]  # checked by vLLM's engine first
            # (a removal would run during this round trip: it is ready at once)
            await asyncio.to_thread(client.list)
            assert engine.removed == []  # the first request may still use id 7
            end.set()
            await first
            await asyncio.wait_for(engine.removal.wait(), timeout=30)
            assert engine.removed == [7]

        asyncio.run(scenario())
        wait_for(lambda: leases(client)["live"] == 0, what="the requests' leases to end")


async def _one_turn() -> None:
    """Awaited as a task: every task scheduled before it has started by then
    (asyncio runs ready tasks in order)."""


def test_unloading_one_of_two_names_with_one_content_keeps_it_in_vllms_engine():
    """Two names with identical content share one identity: vLLM's unload of
    one leaves it in the engine for the other; unloading both removes it."""
    from vllm.entrypoints.openai.models.serving import OpenAIServingModels
    from vllm.entrypoints.serve.lora.protocol import UnloadLoRAAdapterRequest

    server.install()
    models = object.__new__(OpenAIServingModels)  # the attributes the unload uses
    models.lora_resolver_lock = collections.defaultdict(asyncio.Lock)
    models.engine_client = engine = _Engine()
    content = "0123456789abcdef" * 2
    models.lora_requests = {n: LoRARequest(n, 5, identity.AdapterRef(n, content).lora_path)
                            for n in ("twin-a", "twin-b")}

    async def scenario() -> None:
        assert isinstance(await models.unload_lora_adapter(
            UnloadLoRAAdapterRequest(lora_name="twin-a")), str)
        await asyncio.create_task(_one_turn())
        assert engine.removed == []  # twin-b is served from it
        await models.unload_lora_adapter(UnloadLoRAAdapterRequest(lora_name="twin-b"))
        await asyncio.wait_for(engine.removal.wait(), timeout=30)
        assert engine.removed == [5]

    asyncio.run(scenario())
