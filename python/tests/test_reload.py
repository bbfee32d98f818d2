"""Content digests and RELOAD through the Python client, against the real daemon."""

from __future__ import annotations

import numpy as np

import genomed
from genomed_testing import Daemon


def test_digest_is_the_content_and_reload_swaps_under_a_held_lease() -> None:
    with Daemon() as daemon:
        daemon.add_adapter("a", rank=4, seed=1)
        daemon.add_adapter("same", rank=4, seed=1)
        with genomed.connect(daemon.socket) as client:
            old = client.acquire("a")
            assert len(old.digest) == 32 and int(old.digest, 16) >= 0
            assert client.load("a").digest == old.digest
            with client.acquire("same") as twin:
                assert twin.digest == old.digest  # same files, another name
            assert [a.digest for a in client.list() if a.name == "a"] == [old.digest]
            before = {k: np.array(v) for k, v in old.tensors.items()}

            daemon.add_adapter("a", rank=4, seed=2)
            info = client.reload("a")
            assert isinstance(info, genomed.ReloadInfo)
            assert (info.previous_generation, info.previous_digest) == (old.generation,
                                                                        old.digest)
            assert info.previous_leases == 1 and info.digest != old.digest
            with client.acquire("a") as new:
                assert (new.generation, new.digest) == (info.generation, info.digest)
                # Bytes, not values: random F16 bytes include NaNs.
                assert any(before[k].tobytes() != np.array(v).tobytes()
                           for k, v in new.tensors.items())
            for k, v in old.tensors.items():  # the old lease still reads the old bytes
                assert before[k].tobytes() == np.array(v).tobytes()
            old.release()
