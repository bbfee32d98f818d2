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
