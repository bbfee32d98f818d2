"""genomed: zero-copy, read-only access to LoRA adapters held by the genomed daemon.

    import genomed

    with genomed.connect("/run/genomed.sock") as client:
        with client.acquire("my-lora") as lease:
            lease.tensors     # name -> read-only numpy array over shared memory
            lease.modules     # [LoraModule(path, a, b, magnitude, rank, alpha, scaling, ...)]
            lease.to_torch()  # name -> torch.Tensor over the same memory

See docs/protocol.md of the genomed repository for the wire protocol and the
resident layout the C++ client under this package reads.
"""

# connect(), Client and Lease bind genomed's C++ client library (client/,
# include/genomed/client.h) through the extension genomed._native: the
# protocol, lease slots, the resident-layout decoder, deadlines and the fork
# rules exist once, in C++ (docs/python-binding.md).
from ._arguments import DEFAULT, DEFAULT_LOAD_TIMEOUT, DEFAULT_TIMEOUT
from ._native_client import Client, Lease, connect
from ._errors import (AdapterContractError, AdapterFileError, AdapterNameError,
                      CallTimeoutError, CapacityError, Error, FileChangedError,
                      HostResourceError, InternalError, LayoutError, LeaseReleasedError,
                      NotConnectedError, PermissionDeniedError, RequestError,
                      WorkerError)
from .types import (AdapterInfo, Health, LoadInfo, LoraModule, PinInfo, ReloadInfo, StatValue,
                    UnloadInfo)

__version__ = "0.1.0"

__all__ = [
    "connect",
    "Client",
    "Lease",
    "LoraModule",
    "LoadInfo",
    "UnloadInfo",
    "ReloadInfo",
    "PinInfo",
    "AdapterInfo",
    "Health",
    "StatValue",
    "DEFAULT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_LOAD_TIMEOUT",
    "Error",
    "RequestError",
    "NotConnectedError",
    "CallTimeoutError",
    "AdapterNameError",
    "AdapterFileError",
    "FileChangedError",
    "LayoutError",
    "AdapterContractError",
    "CapacityError",
    "WorkerError",
    "PermissionDeniedError",
    "HostResourceError",
    "InternalError",
    "LeaseReleasedError",
]
