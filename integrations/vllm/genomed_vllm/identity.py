"""One identity per content: the `lora_path` vLLM keys an adapter by.

vLLM keys its state by the LoRARequest's `lora_path` (the prefix cache's
block hashes include it; the API server's reload warning compares it), so a
path that stays the same while the adapter's content changes serves stale
state (vllm #30931). genomed's path names the adapter and genomed's content
digest of it (`Lease.digest`: XXH3-128 over the config and tensors, computed
by the worker that loaded it, docs/protocol.md): a RELOAD with changed files,
or unloading, changing the files and loading again, gives another path;
unchanged files (or a restarted daemon) give the same one. Two names with
identical content have one digest, and so one `lora_int_id` (the key of
vLLM's caches of built adapters: lora_int_id below), offline and in the API
server alike.

    genomed://<name>@<digest>      (digest: 32 hex digits)

The scheme keeps vLLM from taking the name for a hub repository (a relative
`lora_path` that does not exist is downloaded).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from http import HTTPStatus
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
    """The content digest of the adapter a lease holds (genomed's)."""
    if not lease.digest:  # a daemon older than the content digest: no identity to key by
        raise errors.GenomedLoRAError(
            lease.name, "protocol_error", "genomed sent no content digest: the vLLM plugin "
            "needs a genomed that sends one (docs/protocol.md)", HTTPStatus.BAD_GATEWAY)
    return lease.digest


def ref_of(lease: genomed.Lease) -> AdapterRef:
    return AdapterRef(lease.name, digest(lease))


_ids: Dict[str, int] = {}  # content digest -> lora_int_id; grows by one int per content seen
_next_id = itertools.count(1 << 30)  # far from the ids vLLM's server and callers number from 1
_ids_lock = threading.Lock()


def lora_int_id(digest: str) -> int:
    """The `lora_int_id` of a content in this process: one per digest, so vLLM
    (which caches built adapters by id: CPU LRU, GPU slots) builds and holds a
    content once however many names carry it, and a new version gets a new id."""
    with _ids_lock:
        return _ids.setdefault(digest, next(_next_id))


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


def acquire(ref: AdapterRef, socket: Optional[str] = None) -> Tuple[genomed.Lease, Any]:
    """A lease on exactly the content `ref` names, and the arena it lies in (loads
    the adapter in genomed if needed). Raises genomed.Error, or GenomedLoRAError
    `content_changed` when genomed now holds other content under the name: never
    another content under this identity."""
    def take(client: genomed.Client) -> Tuple[genomed.Lease, Any]:
        lease = client.acquire(ref.name)
        return lease, client.arena

    lease, arena = connection.call(take, socket)
    try:
        now = digest(lease)
    except errors.GenomedLoRAError:
        lease.release()
        raise
    if now != ref.digest:
        lease.release()
        raise errors.content_changed(ref.name, now, ref.digest)
    return lease, arena
