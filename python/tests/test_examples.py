"""examples/python/publish_versions.py (the README's training loop publishing
versions through files and RELOAD, or from memory with PUBLISH) against the
real daemon, so it cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import genomed
from genomed_testing import Daemon

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "publish_versions.py"
sys.path.insert(0, str(EXAMPLE.parent))
import publish_versions as example  # noqa: E402


def served(lease: genomed.Lease) -> dict:
    return {k: torch.from_numpy(np.array(v)) for k, v in lease.tensors.items()}


@pytest.mark.parametrize("where", ["files", "memory"])
def test_the_training_loop_publishes_each_version_and_servers_get_the_last(where: str) -> None:
    with Daemon() as daemon:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(genomed.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
        source = ["--root", str(daemon.root)] if where == "files" else ["--memory"]
        out = subprocess.run([sys.executable, str(EXAMPLE), "--socket", daemon.socket, *source,
                              "--name", "policy", "--steps", "3"],
                             check=True, capture_output=True, text=True, env=env).stdout
        lines = out.splitlines()
        assert len(lines) == 3 and "previous -" in lines[0], out
        digests = [line.split(" digest ")[1].split()[0] for line in lines]
        assert len(set(digests)) == 3  # three versions, three identities
        expected = example.initial_tensors()
        for step in range(3):
            expected = example.train_step(expected, step)
        with genomed.connect(daemon.socket) as client, client.acquire("policy") as lease:
            assert lease.digest == digests[-1]
            got = served(lease)
            assert got.keys() == expected.keys()
            assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_a_request_holding_a_version_keeps_it_while_the_next_is_published() -> None:
    with Daemon() as daemon, genomed.connect(daemon.socket) as client:
        example.write_config(daemon.root / "policy")
        first = example.train_step(example.initial_tensors(), 0)
        example.publish(client, daemon.root, "policy", first)
        held = client.acquire("policy")  # a request in flight on version 1
        second = example.train_step(first, 1)
        info = example.publish(client, daemon.root, "policy", second)
        assert (info.previous_digest, info.previous_leases) == (held.digest, 1)
        with client.acquire("policy") as now:
            assert now.digest == info.digest != held.digest
            assert all(torch.equal(v, second[k]) for k, v in served(now).items())
        assert all(torch.equal(v, first[k]) for k, v in served(held).items())
        held.release()
