"""One identity per content: the `lora_path` vLLM keys an adapter by.

vLLM keys its state by the LoRARequest's `lora_path` (the prefix cache's
block hashes include it; the API server's reload warning compares it), so a
path that stays the same while the adapter's files change serves stale
state (vllm #30931). genomed's path names the adapter and a digest of its
content: the config genomed validated and, per tensor, its name, dtype,
shape and the XXH3-64 checksum the load recorded in the resident header.
Unloading an adapter, changing its files and loading it again gives another
path; reloading unchanged files (or a restarted daemon) gives the same one.
No tensor is read to compute it.

    genomed://<name>@<digest>      (digest: 32 hex digits of SHA-256)

The scheme keeps vLLM from taking the name for a hub repository (a relative
`lora_path` that does not exist is downloaded).
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import genomed

from . import connection, errors

SCHEME = "genomed://"
_DIGEST_HEX = 32


@dataclass(frozen=True)
class AdapterRef:
    """A genomed adapter as vLLM names it: the daemon's name and the content digest."""

    name: str
    digest: str

    @property
    def lora_path(self) -> str:
        return f"{SCHEME}{self.name}@{self.digest}"


def digest(lease: genomed.Lease) -> str:
    """The content digest of the adapter a lease holds."""
    # Each of these properties builds a new dict: read them once (inside the
    # comprehension they made the digest quadratic, 20 ms for 448 tensors).
    dtypes, shapes, checksums = lease.dtypes, lease.shapes, lease.checksums
    tensors = [[n, dtypes[n], list(shapes[n]), c] for n, c in sorted(checksums.items())]
    text = json.dumps({"config": lease.config, "tensors": tensors}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_HEX]


def ref_of(lease: genomed.Lease) -> AdapterRef:
    return AdapterRef(lease.name, digest(lease))


def parse(lora_path: str) -> Optional[AdapterRef]:
    """The adapter a `lora_path` names, or None when it is not genomed's."""
    if not isinstance(lora_path, str) or not lora_path.startswith(SCHEME):
        return None
    name, sep, dig = lora_path[len(SCHEME):].rpartition("@")
    if not sep or not name or len(dig) != _DIGEST_HEX or any(
            c not in "0123456789abcdef" for c in dig):
        raise ValueError(f"malformed genomed LoRA path {lora_path!r}: expected "
                         f"{SCHEME}<name>@<{_DIGEST_HEX} hex digits> "
                         "(make it with genomed_vllm.lora_request)")
    return AdapterRef(name, dig)


# Digests already computed, per connection: within one daemon process (one
# connection) a load generation names one content (generations never repeat),
# so admission's check of each request costs no digest of a known load (it
# is ~2 ms for 448 tensors). Bounded by clearing it when full.
_known: "weakref.WeakKeyDictionary[genomed.Client, Dict[Tuple[str, int], str]]" = \
    weakref.WeakKeyDictionary()
_known_lock = threading.Lock()
_KNOWN_MAX = 4096


def _digest_of(client: genomed.Client, lease: genomed.Lease) -> str:
    key = (lease.name, lease.generation)
    with _known_lock:
        found = _known.setdefault(client, {}).get(key)
    if found is None:
        found = digest(lease)
        with _known_lock:
            known = _known.setdefault(client, {})
            if len(known) >= _KNOWN_MAX:
                known.clear()
            known[key] = found
    return found


def acquire(ref: AdapterRef, socket: Optional[str] = None) -> Tuple[genomed.Lease, Any]:
    """A lease on exactly the content `ref` names, and the arena it lies in (loads
    the adapter in genomed if needed). Raises genomed.Error, or GenomedLoRAError
    `content_changed` when genomed now holds other content under the name: never
    another content under this identity."""
    def take(client: genomed.Client) -> Tuple[genomed.Lease, Any, str]:
        lease = client.acquire(ref.name)
        return lease, client.arena, _digest_of(client, lease)

    lease, arena, now = connection.call(take, socket)
    if now != ref.digest:
        lease.release()
        raise errors.content_changed(ref.name, now, ref.digest)
    return lease, arena
