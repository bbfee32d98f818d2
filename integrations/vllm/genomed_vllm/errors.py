"""genomed's errors as vLLM errors with an HTTP status.

The message always carries genomed's error code and message, so whoever
reads the 4xx/5xx (or the offline API's exception) knows what genomed said.
`GracefulHTTPError` is the vLLM error its OpenAI server answers with the
status it carries; raised from the resolver it reaches the client as is
(vLLM turns a resolver's None into a bare 404 and a failed load into a
generic 400, both without the reason).
"""

from __future__ import annotations

from http import HTTPStatus

import genomed
from vllm.exceptions import GracefulHTTPError


class GenomedLoRAError(GracefulHTTPError):
    """A genomed adapter vLLM cannot serve. `.code`: genomed's error code (or
    "vllm_refused" when vLLM refuses the adapter's kind), `.http_status`."""

    def __init__(self, name: str, code: str, message: str, http_status: HTTPStatus) -> None:
        super().__init__(f"LoRA adapter '{name}' from genomed: {code}: {message}", http_status)
        self.name = name
        self.code = code


def _status(e: genomed.Error) -> HTTPStatus:
    if isinstance(e, genomed.AdapterNameError):
        return HTTPStatus.NOT_FOUND if e.code == "not_found" else HTTPStatus.BAD_REQUEST
    if isinstance(e, (genomed.AdapterFileError, genomed.AdapterContractError,
                      genomed.LayoutError)):
        return HTTPStatus.UNPROCESSABLE_ENTITY  # the adapter itself is unusable
    if isinstance(e, genomed.CapacityError):
        # too_large: no budget ever holds it; the rest pass (room, unload, drain)
        return (HTTPStatus.INSUFFICIENT_STORAGE if e.code == "too_large"
                else HTTPStatus.SERVICE_UNAVAILABLE)
    if isinstance(e, (genomed.WorkerError, genomed.NotConnectedError)):
        return HTTPStatus.SERVICE_UNAVAILABLE  # crashed/quarantined/daemon down: retry later
    return HTTPStatus.BAD_GATEWAY  # a request or internal error of the daemon


def from_genomed(name: str, e: genomed.Error) -> GenomedLoRAError:
    message = e.message or str(e)
    if e.hint:
        message += f" (what to do: {e.hint})"
    return GenomedLoRAError(name, e.code, message, _status(e))


def refused(name: str, reasons: list) -> GenomedLoRAError:
    """vLLM cannot serve this kind of adapter (DoRA, lora_bias, ...)."""
    return GenomedLoRAError(name, "vllm_refused", " ".join(reasons),
                            HTTPStatus.UNPROCESSABLE_ENTITY)


# vLLM's accepted --max-lora-rank values (vllm/config/lora.py MaxLoRARanks, 0.32.0).
_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def rank_too_high(name: str, rank: int, max_lora_rank: int) -> GenomedLoRAError:
    """The adapter's rank (r or its largest rank_pattern entry) is above the
    server's --max-lora-rank: vLLM's worker would refuse it."""
    fits = next((r for r in _MAX_LORA_RANKS if r >= rank), None)
    todo = (f"start vLLM with --max-lora-rank {fits} (or more)" if fits is not None
            else f"vLLM accepts no rank above {_MAX_LORA_RANKS[-1]}")
    return GenomedLoRAError(
        name, "vllm_refused",
        f"the adapter's rank {rank} is greater than this server's --max-lora-rank "
        f"{max_lora_rank}: {todo}, or serve an adapter of rank <= {max_lora_rank}",
        HTTPStatus.UNPROCESSABLE_ENTITY)


def content_changed(name: str, now: str, requested: str) -> GenomedLoRAError:
    """genomed holds other content under the name than the identity vLLM asked for."""
    return GenomedLoRAError(
        name, "content_changed",
        f"genomed now holds other content under this name (digest {now}, requested "
        f"{requested}): make a new LoRARequest (genomed_vllm.lora_request) for the new "
        "content; vLLM's API server does so itself on the next request", HTTPStatus.CONFLICT)
