"""genomed: zero-copy, read-only access to LoRA adapters held by the genomed daemon.

    import genomed

    with genomed.connect("/run/genomed.sock") as client:
        with client.acquire("my-lora") as lease:
            lease.tensors     # name -> read-only numpy array over shared memory
            lease.modules     # [LoraModule(path, a, b, magnitude, rank, alpha, scaling, ...)]
            lease.to_torch()  # name -> torch.Tensor over the same memory

See docs/protocol.md of the genomed repository for the wire protocol and the
resident layout this package reads.
"""

import os as _os

# Which implementation connect(), Client and Lease are: the pure-Python client
# (_client.py, the default until the binding passes every test) or the binding
# of the C++ client library (_native_client.py over the extension _native;
# GENOMED_CLIENT=native). docs/python-binding.md says what still differs.
if _os.environ.get("GENOMED_CLIENT", "python") == "native":
    from ._native_client import (DEFAULT, DEFAULT_LOAD_TIMEOUT, DEFAULT_TIMEOUT, Client,
                                 Lease, connect)
else:
    from ._client import (DEFAULT, DEFAULT_LOAD_TIMEOUT, DEFAULT_TIMEOUT, Client,  # type: ignore[assignment]
                          Lease, connect)
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
