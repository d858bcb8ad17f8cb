"""The one retry policy: which failures are transient, and how long to wait before the next try.

Backends keep their SDK's own retries off, so these are the only retries and attempts never
multiply.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any

from imgen.errors import RetryableError

__all__ = ["RetryPolicy", "is_transient", "retry_after_of", "status_code_of"]

TRANSIENT_STATUSES = frozenset({408, 409, 429})


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (`.status_code` or `.response.status_code`)."""
    for holder in (exc, getattr(exc, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _parse_retry_after(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait, from `exc.retry_after` or a `Retry-After` header.

    Both the delta-seconds and HTTP-date forms are understood, and so is `retry-after-ms`.
    """
    own = _parse_retry_after(getattr(exc, "retry_after", None))
    if own is not None:
        return own
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None or not hasattr(headers, "get"):
        return None
    millis = _parse_retry_after(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    return _parse_retry_after(headers.get("retry-after"))


def is_transient(exc: BaseException) -> bool:
    """The default `is_retryable`: timeouts, dropped connections, 408/409/429 and 5xx."""
    if isinstance(exc, RetryableError | TimeoutError | ConnectionError):
        return True
    status = status_code_of(exc)
    return status is not None and (status in TRANSIENT_STATUSES or status >= 500)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, overridden by the server's `Retry-After`.

    Attributes:
        max_retries: Retries after the first attempt; attempts never exceed 1 + max_retries.
        initial_delay: The first backoff, in seconds; each retry doubles it.
        max_delay: The cap on a computed backoff (a server's Retry-After is honoured as is).
    """

    max_retries: int
    initial_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, retry: int, exc: BaseException) -> float:
        """Seconds to wait before retry number `retry` (0-based) after `exc`."""
        asked = retry_after_of(exc)
        if asked is not None:
            return asked
        backoff = min(self.max_delay, self.initial_delay * 2.0**retry)
        # Full jitter spreads out clients that failed together.
        return backoff * random.uniform(0.5, 1.0)
