"""What the daemon reports (the C++ types of include/genomed/types.h), and
the LoRA modules of a lease."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

__all__ = ["LoadInfo", "UnloadInfo", "PinInfo", "AdapterInfo", "Health", "LoraModule",
           "StatValue"]

StatValue = Union[int, str]


@dataclass(frozen=True)
class LoadInfo:
    """Result of :meth:`genomed.Client.load`."""

    name: str
    bytes: int  #: the adapter's resident size (its layout's total_bytes)
    generation: int  #: which load of the adapter the resident copy is
    was_resident: bool  #: True for a cache hit; False if this request started or joined a load
    #: content digest of the resident copy: 32 hex digits of XXH3-128 over its config
    #: and tensors (equal for equal content); "" from older daemons
    digest: str = ""


@dataclass(frozen=True)
class UnloadInfo:
    """Result of :meth:`genomed.Client.unload`."""

    name: str
    outcome: str  #: "freed" | "draining" | "cancelled" | "unquarantined"
    leases: int  #: for "draining": leases still held; otherwise 0


@dataclass(frozen=True)
class ReloadInfo:
    """Result of :meth:`genomed.Client.reload`."""

    name: str
    bytes: int  #: resident size of the new generation
    generation: int  #: the new generation: every acquire from now on gets it
    digest: str  #: its content digest (as :attr:`LoadInfo.digest`)
    previous_generation: int  #: the generation it replaced; 0 when none was resident
    previous_digest: str  #: "" when none was resident
    previous_leases: int  #: leases the old generation still has: freed when they end


@dataclass(frozen=True)
class PinInfo:
    """Result of :meth:`genomed.Client.pin` and :meth:`genomed.Client.unpin`."""

    name: str
    bytes: int  #: the adapter's resident size
    generation: int
    pinned: bool  #: now
    was_pinned: bool  #: before the call (pin and unpin are idempotent)
    digest: str = ""  #: content digest, as :attr:`LoadInfo.digest`


@dataclass(frozen=True)
class AdapterInfo:
    """One entry of :meth:`genomed.Client.list`."""

    name: str
    state: str  #: "loading" | "ready" | "draining"
    bytes: int  #: resident size (0 while loading)
    leases: int  #: active leases, over all clients
    generation: int
    pinned: bool = False  #: never evicted; unload refuses it (False from older daemons)
    #: milliseconds since it was last used (0 while leased or loading; 0 from older daemons)
    idle_ms: int = 0
    #: milliseconds until it is unloaded for idleness; None: never (leased, pinned,
    #: keep-alive 0, ``--idle-unload`` off) or an older daemon
    expires_in_ms: Optional[int] = None
    #: while loading: the bytes its fill writes (0 until probed) and those written so
    #: far (per completed fill part); poll :meth:`genomed.Client.list` to follow a load
    fill_total: int = 0
    filled: int = 0
    digest: str = ""  #: content digest, as :attr:`LoadInfo.digest`; "" while loading


@dataclass(frozen=True)
class Health:
    """Result of :meth:`genomed.Client.health`."""

    healthy: bool
    reason: str  #: "" when healthy; otherwise why not
    #: every loader worker has been on its current job for ``--saturated-after-ms``
    #: or longer: cold loads wait, cached adapters are still served (``healthy`` is
    #: then false too). False from daemons older than the field.
    saturated: bool = False

    def __bool__(self) -> bool:
        return self.healthy


def _describe(a: Optional[np.ndarray]) -> str:
    return "None" if a is None else f"<{a.dtype} {list(a.shape)}>"


@dataclass(frozen=True, eq=False, repr=False)
class LoraModule:
    """One LoRA module of an adapter, from its validated contract.

    ``a`` and ``b`` (and ``magnitude``, ``lora_bias``) are the same zero-copy,
    read-only arrays as in ``Lease.tensors``. PEFT computes the module's
    output as ``base(x) + scaling * B(A(x))``.
    """

    path: str  #: module path in the base model; its base weight is path + ".weight"
    a: np.ndarray  #: lora_A ([rank, in] for linear)
    b: np.ndarray  #: lora_B ([out, rank] for linear)
    magnitude: Optional[np.ndarray]  #: DoRA's magnitude vector (use_dora), else None
    rank: int  #: effective rank (rank_pattern, else r)
    alpha: float  #: effective alpha (alpha_pattern, else lora_alpha)
    scaling: float  #: alpha / rank, or alpha / sqrt(rank) with use_rslora
    kind: str = "linear"  #: "linear" | "embedding" | "conv"
    lora_bias: Optional[np.ndarray] = None  #: lora_B.bias ([out]) under lora_bias, else None
    a_name: str = ""  #: tensor name of A
    b_name: str = field(default="")  #: tensor name of B

    def __repr__(self) -> str:
        extra = ""
        if self.magnitude is not None:
            extra += f", magnitude={_describe(self.magnitude)}"
        if self.lora_bias is not None:
            extra += f", lora_bias={_describe(self.lora_bias)}"
        return (f"LoraModule({self.path!r}, kind={self.kind!r}, a={_describe(self.a)}, "
                f"b={_describe(self.b)}{extra}, rank={self.rank}, alpha={self.alpha:g}, "
                f"scaling={self.scaling:g})")
