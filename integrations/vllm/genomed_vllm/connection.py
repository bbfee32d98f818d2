"""The plugin's connections to genomed: one per thread of each vLLM process.

One per thread because a connection answers one request at a time (a cold
load would hold up every other thread's ACQUIRE; the client's README says
so); the resolver's calls run in the threads of asyncio.to_thread, the
worker's on the engine's own thread. A connection found lost (the daemon
restarted) is replaced once and the call retried; a timeout is not retried.
The client's own at-fork handling covers a forked vLLM process; the CPU
platform spawns anyway.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Optional, TypeVar

import genomed

ENV_SOCKET = "GENOMED_SOCKET"
CLIENT_NAME = "vllm"

T = TypeVar("T")

_local = threading.local()


def socket_path() -> Optional[str]:
    return os.environ.get(ENV_SOCKET) or None


def _client(path: str) -> genomed.Client:
    client = getattr(_local, "client", None)
    if client is None or client.closed or client.path != path:
        client = genomed.connect(path, client_name=CLIENT_NAME)
        _local.client = client
    return client


def call(fn: Callable[[genomed.Client], T], path: Optional[str] = None) -> T:
    """fn(client) on this thread's connection to genomed at `path` (default:
    $GENOMED_SOCKET)."""
    path = path or socket_path()
    if path is None:
        raise genomed.NotConnectedError(
            "not_connected", f"{ENV_SOCKET} is not set: the genomed vLLM plugin is off")
    try:
        return fn(_client(path))
    except genomed.CallTimeoutError:
        raise
    except genomed.NotConnectedError:
        # A daemon restarted since: the old connection is dead, a new one works.
        _local.client = None
        return fn(_client(path))
