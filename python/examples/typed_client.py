"""A typed user of the genomed package: `mypy --strict` checks it with the
package's hints and the stubs of genomed._native (scripts/test.sh does not;
docs/python-binding.md says how to run it)."""

from __future__ import annotations

from typing import Dict

import numpy as np

import genomed


def shapes_of(socket: str, adapter: str) -> Dict[str, tuple[int, ...]]:
    with genomed.connect(socket, timeout=5.0) as client:
        with client.acquire(adapter, keep_alive=60.0, priority="high") as lease:
            tensors: Dict[str, np.ndarray] = lease.tensors
            for module in lease.modules:
                assert module.a.shape[0] == module.rank
            return {name: tuple(a.shape) for name, a in tensors.items()}


def healthy(socket: str) -> bool:
    try:
        with genomed.connect(socket) as client:
            return client.health().healthy
    except genomed.NotConnectedError as e:
        print(e.code, e.number, e.message, e.hint)
        return False
