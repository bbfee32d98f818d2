"""The error vocabulary of genomed, as Python exceptions.

Every error the daemon sends carries a stable numeric code and its name
(docs/protocol.md section 5, include/genomed/errc.h). The client raises one
exception class per *family* of codes, so callers can catch broadly
(``except genomed.CapacityError``) or match exactly (``err.code ==
"not_found"``). Codes this version does not know still raise a
:class:`Error` (of the family their number falls into, if any).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Type

__all__ = [
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
    "HostResourceError",
    "InternalError",
    "LeaseReleasedError",
    "CODES",
]

# number -> (name, what the caller should do). Mirrors include/genomed/errc.h.
CODES: Dict[int, Tuple[str, str]] = {
    1: ("bad_request", "fix the request; the connection stays usable"),
    2: ("unsupported_version", "use a client of protocol version 1"),
    3: ("unknown_op", "fix the client: the daemon does not know this operation"),
    4: ("frame_too_large", "send smaller requests"),
    5: ("malformed_frame", "fix the encoder"),
    6: ("not_connected",
        "check the socket path and that genomed runs, then reconnect "
        "(leases of a lost connection are gone)"),
    7: ("hello_required", "send HELLO first"),
    8: ("protocol_error",
        "report it with the daemon's version (genomed's reply does not follow the protocol); "
        "reconnect"),
    10: ("invalid_name", "use a plain relative adapter name"),
    11: ("path_escapes_root",
         "operator: put the directory or file itself under the root; the daemon follows "
         "no symlink"),
    12: ("not_found", "check the adapter name and the daemon's --root directories"),
    20: ("file_unreadable", "fix the adapter's files"),
    21: ("config_invalid_json", "fix adapter_config.json"),
    22: ("config_missing_field", "fix adapter_config.json"),
    23: ("config_invalid_field", "fix adapter_config.json"),
    24: ("config_unsupported_peft_type", "only LoRA adapters are served"),
    30: ("st_file_too_short", "fix or re-export adapter_model.safetensors"),
    31: ("st_header_too_large", "fix or re-export adapter_model.safetensors"),
    32: ("st_header_invalid_json", "fix or re-export adapter_model.safetensors"),
    33: ("st_header_not_object", "fix or re-export adapter_model.safetensors"),
    34: ("st_tensor_entry_invalid", "fix or re-export adapter_model.safetensors"),
    35: ("st_dtype_unknown", "fix or re-export adapter_model.safetensors"),
    36: ("st_shape_invalid", "fix or re-export adapter_model.safetensors"),
    37: ("st_offsets_invalid", "fix or re-export adapter_model.safetensors"),
    38: ("st_offsets_out_of_bounds", "fix or re-export adapter_model.safetensors"),
    39: ("st_tensors_overlap", "fix or re-export adapter_model.safetensors"),
    40: ("st_size_mismatch", "fix or re-export adapter_model.safetensors"),
    41: ("st_trailing_bytes", "fix or re-export adapter_model.safetensors"),
    42: ("st_data_gap", "fix or re-export adapter_model.safetensors"),
    43: ("st_metadata_invalid", "fix or re-export adapter_model.safetensors"),
    44: ("st_duplicate_tensor", "fix or re-export adapter_model.safetensors"),
    45: ("adapter_empty", "fix or re-export adapter_model.safetensors"),
    46: ("file_changed", "retry: the next load reads the files as they are then "
                         "(rewrite adapters by renaming a new file over the old one)"),
    47: ("layout_invalid",
         "report it: the resident copy in shared memory is corrupt (a bug or a broken worker)"),
    50: ("too_large", "operator: raise genomed --budget"),
    51: ("no_space", "release leases or retry later; operator: raise --budget"),
    52: ("cancelled", "the load was cancelled by an unload; retry if you still want it"),
    53: ("not_loaded", "nothing to do: the adapter is not resident"),
    54: ("draining", "retry after the adapter's remaining leases end"),
    55: ("limit_exceeded", "stay within the limit the message names (an adapter file's or a "
                           "connection's); operator: see docs/operations.md for its flag"),
    56: ("permission_denied", "operator: add this user or one of its groups to genomed's "
                              "--allow-uid / --allow-gid"),
    57: ("pin_budget_exceeded", "unpin another adapter first; operator: raise --pin-budget"),
    58: ("pinned", "unpin the adapter before unloading it"),
    59: ("prefetch_dropped", "nothing to do: a prefetch takes free room only; load it when "
                             "it is needed"),
    60: ("worker_crashed", "retry later; if it repeats the adapter is poisonous"),
    61: ("timeout", "retry; operator: check worker health or raise the load timeouts"),
    62: ("quarantined", "replace the files, wait, or unload the name to lift the quarantine"),
    63: ("circuit_open", "retry after the stated time; cached adapters are still served"),
    64: ("overloaded", "back off and retry"),
    65: ("unhealthy", "retry after the stated time; cached adapters are still served"),
    66: ("shutting_down", "reconnect to the next genomed instance"),
    67: ("worker_protocol", "report it; retry"),
    68: ("environment", "operator: the host refused a resource (shared memory, socket, "
                        "descriptor, worker binary); fix what the message names"),
    70: ("module_incomplete", "re-export the adapter"),
    71: ("rank_mismatch", "fix r / rank_pattern in adapter_config.json or re-export"),
    72: ("shape_mismatch", "re-export the adapter"),
    73: ("dora_mismatch", "fix use_dora in adapter_config.json or re-export"),
    74: ("lora_bias_mismatch", "fix lora_bias in adapter_config.json or re-export"),
    75: ("incompatible_base_model", "use the adapter with its own base model"),
    76: ("base_model_invalid", "operator: fix genomed --base-model"),
    99: ("internal", "a bug in genomed: report it with the daemon's log"),
}
_NUMBERS: Dict[str, int] = {name: number for number, (name, _) in CODES.items()}


class Error(Exception):
    """Any error of genomed.

    Attributes:
        code: the stable wire name of the error (``"not_found"``, ...).
        number: its stable wire number (``12``, ...).
        message: what went wrong, as the daemon (or this client) said it.
    """

    code: str
    number: int
    message: str

    def __init__(self, code: str, message: str, number: Optional[int] = None) -> None:
        self.code = code
        self.number = _NUMBERS.get(code, 0) if number is None else number
        self.message = message
        super().__init__(code, message)

    @property
    def hint(self) -> str:
        """What to do about it (from the protocol's error table), or ``""``."""
        entry = CODES.get(self.number)
        return entry[1] if entry is not None and entry[0] == self.code else ""

    def __str__(self) -> str:
        hint = self.hint
        return f"{self.code} ({self.number}): {self.message}" + (f" [{hint}]" if hint else "")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code!r}, number={self.number}, "
                f"message={self.message!r})")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.code, self.message, self.number))


class RequestError(Error):
    """Codes 1-9: the request or the wire (bad_request, malformed_frame, ...), and
    ``protocol_error`` (8, client side): a reply that does not follow the protocol."""


class NotConnectedError(Error):
    """Code 6: the daemon cannot be reached, or the connection was lost or closed."""


class CallTimeoutError(NotConnectedError):
    """A call missed the client's deadline (code ``"timeout"``).

    The connection is closed afterwards: a late reply could otherwise be read
    as the answer to the next request. Leases taken on it end once their views
    are gone. Connect again to continue.
    """


class AdapterNameError(Error):
    """Codes 10-12: the name is invalid, escapes its root, or is not found."""


class AdapterFileError(Error):
    """Codes 20-46: the adapter's files are unreadable or invalid."""


class FileChangedError(AdapterFileError):
    """Code 46 (file_changed): the adapter's files changed while it was loading
    (rewritten in place, truncated, or replaced). Nothing is cached or
    quarantined: retrying loads the files as they are then."""


class LayoutError(Error):
    """Code 47 (layout_invalid): the resident copy in the arena failed validation."""


class AdapterContractError(Error):
    """Codes 70-79: the adapter's tensors contradict its config, or its base model."""


class CapacityError(Error):
    """Codes 50-59: capacity and lifecycle (no_space, cancelled, draining, ...)."""


class PermissionDeniedError(Error, PermissionError):
    """Code 56 (permission_denied): the daemon refused this client's user and
    groups at HELLO (its --allow-uid / --allow-gid). Retrying does not help."""


class WorkerError(Error):
    """Codes 60-69: loader workers and their pool (worker_crashed, timeout, ...)."""


class HostResourceError(Error):
    """Code 68 (environment): the host refused a resource genomed needs (shared
    memory, a socket, a descriptor, the worker binary). Not a bug: the message
    names the call and the OS error."""


class InternalError(Error):
    """Code 99: a bug in genomed."""


class LeaseReleasedError(Error, RuntimeError):
    """A released lease was asked for its tensors (client side, code ``"lease_released"``).

    After ``release()`` (or leaving the ``with`` block) the daemon may reuse the
    lease's memory once the views taken before are gone, so no new views are
    handed out. Keep the arrays you need, or keep the lease.
    """

    def __init__(self, code: str = "lease_released", message: str = "",
                 number: Optional[int] = None) -> None:
        super().__init__(code, message, 0 if number is None else number)


def _family(number: int) -> Type[Error]:
    if number == 6:
        return NotConnectedError
    if 1 <= number <= 9:
        return RequestError
    if 10 <= number <= 19:
        return AdapterNameError
    if number == 46:
        return FileChangedError
    if number == 47:
        return LayoutError
    if 20 <= number <= 49:
        return AdapterFileError
    if number == 56:
        return PermissionDeniedError
    if 50 <= number <= 59:
        return CapacityError
    if number == 68:
        return HostResourceError
    if 60 <= number <= 69:
        return WorkerError
    if 70 <= number <= 79:
        return AdapterContractError
    if number == 99:
        return InternalError
    return Error


def from_wire(number: int, name: Optional[str], message: str) -> Error:
    """The exception for an error reply of the daemon ({"code", "error", "message"})."""
    known = CODES.get(number)
    if known is not None:
        code = known[0]
    elif name:
        code = name
    else:
        code = f"error_{number}"
        message = f"daemon sent unknown error code {number}: {message}"
    return _family(number)(code, message, number)


def make(code: str, message: str) -> Error:
    """A client-side error with a known code name."""
    number = _NUMBERS[code]
    return _family(number)(code, message, number)


def timeout_error(message: str) -> CallTimeoutError:
    return CallTimeoutError("timeout", message, _NUMBERS["timeout"])
