"""The one retry policy: which failures are transient, and how long to wait before the next try.

Backends keep their SDK's own retries off, so these are the only retries and attempts never
multiply.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from imgen.errors import RetryableError, RetryAfterTooLongError

__all__ = ["RetryPolicy", "is_transient", "parse_retry_after", "retry_after_of", "status_code_of"]

TRANSIENT_STATUSES = frozenset({408, 409, 429})


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (`.status_code` or `.response.status_code`)."""
    for holder in (exc, getattr(exc, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def parse_retry_after(value: Any) -> float | None:
    """Seconds from a Retry-After value; None for anything that is not a usable wait.

    Non-finite ("inf", "1e400", "NaN") and negative numbers are ignored rather than obeyed;
    an HTTP date in the past means "now".
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            text = str(value).strip()
            try:
                seconds = float(text)
            except ValueError:
                when = email.utils.parsedate_to_datetime(text)
                seconds = max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait, from `exc.retry_after` or a `Retry-After` header.

    Both the delta-seconds and HTTP-date forms are understood, and so is `retry-after-ms`.
    """
    own = parse_retry_after(getattr(exc, "retry_after", None))
    if own is not None:
        return own
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None or not hasattr(headers, "get"):
        return None
    millis = parse_retry_after(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    return parse_retry_after(headers.get("retry-after"))


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
        max_delay: The cap on a computed backoff (a server's Retry-After is honoured as is,
            up to `max_retry_after`).
        max_retry_after: The longest Retry-After honoured, in seconds.
    """

    max_retries: int
    initial_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0

    def delay(self, retry: int, exc: BaseException) -> float:
        """Seconds to wait before retry number `retry` (0-based) after `exc`.

        Raises:
            RetryAfterTooLongError: The server asked for more than `max_retry_after`.
        """
        asked = retry_after_of(exc)
        if asked is not None:
            if asked > self.max_retry_after:
                raise RetryAfterTooLongError(asked, self.max_retry_after, exc) from exc
            return asked
        backoff = min(self.max_delay, self.initial_delay * 2.0**retry)
        # Full jitter spreads out clients that failed together.
        return backoff * random.uniform(0.5, 1.0)
