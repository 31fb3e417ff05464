"""Retry policy and HTTP fault handling shared by every client of a remote service (the hosted
generators in `models/hosted/`, the hosted voices in `speech.py`): how an exception or an HTTP status
reads (retry it, a refusal, give up), whether a request may have been sent, and how long to wait.

A foundation: imports nothing from the workbench. `models.hosted.base` re-exports these names.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal


@dataclass
class Fault:
    """How a provider reads an exception: retry it, record a refusal, or give up."""

    kind: Literal["transient", "refused", "fatal"]
    message: str
    retry_after: float | None = None
    # a transport fault: False when the request never reached the provider (connection refused, connect
    # timeout: safe to send again), True when it may have (a read timeout, a dropped connection); None: an
    # answer from the provider (a status), or not known
    sent: bool | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and a cap: attempt i waits base*2**i (x0.5..1.5), at most cap."""

    retries: int = 4
    base_s: float = 1.0
    cap_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(float(retry_after), self.cap_s)
        return min(self.cap_s, self.base_s * (2 ** attempt) * random.uniform(0.5, 1.5))

    @property
    def max_total_wait(self) -> float:
        return self.retries * self.cap_s


TRANSIENT_STATUS = frozenset({408, 429})  # and every 5xx


def status_fault(status: int, message: str, headers: Any = None, transient: frozenset[int] = TRANSIENT_STATUS) -> Fault:
    """An HTTP error status read the one way every provider's client needs: 408, 429 (and any code in
    `transient`) and 5xx are retried, honouring the response's Retry-After; the rest are fatal."""
    retryable = status in transient or status >= 500
    return Fault("transient" if retryable else "fatal", message, _retry_after(headers) if headers is not None else None)


_NOT_SENT = ("ConnectError", "ConnectTimeout", "PoolTimeout")  # httpx faults raised before a request left


def _httpx_kind(exc: BaseException, names: tuple[str, ...]) -> bool:
    """Whether `exc` is one of httpx's exception classes `names`, from httpx itself or a vendored copy
    (its module path starts with `httpx`, e.g. google-genai's `httpx2`): matched by class name along the
    MRO, since a vendored copy's classes are not httpx's."""
    return any(c.__name__ in names and c.__module__.split(".")[0].startswith("httpx") for c in type(exc).__mro__)


def transport_fault(exc: BaseException) -> Fault | None:
    """A transport fault (httpx or a vendored copy; also an SDK error caused by one) as a transient Fault
    that says whether the request may have been sent; None for anything else."""
    for e in (exc, exc.__cause__, exc.__context__):
        if e is None:
            continue
        if _httpx_kind(e, _NOT_SENT):
            return Fault("transient", f"{type(e).__name__}: {e}", sent=False)
        if _httpx_kind(e, ("TransportError", "TimeoutException")):
            return Fault("transient", f"{type(e).__name__}: {e}", sent=True)
    return None


def sdk_fault(sdk: Any, exc: BaseException, message_keys: tuple[str, ...],
              refusal_words: tuple[str, ...]) -> Fault | None:
    """How the generated SDKs that share one error shape (runwayml, lumaai: APIStatusError with a JSON body,
    APIConnectionError, APITimeoutError) fail: a 400 whose message names a policy is a refusal, the rest
    by status. None for an exception of another kind."""
    if isinstance(exc, sdk.APIStatusError):
        code = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        message = str(next((body[k] for k in message_keys if body.get(k)), None) or exc.message)
        if code == 400 and any(w in message.lower() for w in refusal_words):
            return Fault("refused", message)
        return status_fault(code, f"HTTP {code}: {message}", exc.response.headers)
    if isinstance(exc, (sdk.APIConnectionError, sdk.APITimeoutError)):
        cause = transport_fault(exc)  # the httpx fault beneath: was the request sent?
        return Fault("transient", type(exc).__name__,
                     sent=cause.sent if cause is not None else isinstance(exc, sdk.APITimeoutError) or None)
    return None


def _retry_after(headers: Any) -> float | None:
    try:
        v = headers.get("retry-after")
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
