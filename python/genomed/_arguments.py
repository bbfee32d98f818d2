"""The Python side of a call's arguments: the default deadlines, the DEFAULT
sentinel ("the client's timeout"), and the checks made before anything goes
to the C++ client (a name is a str; keep_alive and priority are in range),
so a bad argument is a TypeError or a bad_request at once, as it always was.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

from . import _errors

DEFAULT_TIMEOUT = 10.0
"""Seconds: the default deadline of connect() and of quick calls."""
DEFAULT_LOAD_TIMEOUT = 120.0
"""Seconds: the default deadline of load() and acquire(), which may load from disk."""
_MAX_KEEP_ALIVE_S = 365 * 24 * 3600  # as kMaxKeepAliveMs in ipc/protocol.h


class _Default:
    """Type of DEFAULT: "use the client's timeout"."""

    _instance: Optional["_Default"] = None

    def __new__(cls) -> "_Default":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()
Timeout = Union[float, None, _Default]


def check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    return name


_PRIORITIES = ("high", "normal", "low")


def load_args(keep_alive: Optional[float], priority: str) -> Tuple[Optional[int], str]:
    """keep_alive in ms (None: not given) and the priority, checked."""
    if priority not in _PRIORITIES:
        raise _errors.make("bad_request", f"priority: expected 'high', 'normal' or 'low', "
                                          f"got {priority!r}")
    if keep_alive is None:
        return None, priority
    if isinstance(keep_alive, bool) or not isinstance(keep_alive, (int, float)) or not (
            0 <= keep_alive <= _MAX_KEEP_ALIVE_S):
        raise _errors.make("bad_request", f"keep_alive: expected seconds in [0, "
                                          f"{_MAX_KEEP_ALIVE_S}], got {keep_alive!r}")
    # A positive time never rounds to 0 ms: the daemon reads 0 as "never".
    return (max(1, int(round(keep_alive * 1000))) if keep_alive > 0 else 0), priority
