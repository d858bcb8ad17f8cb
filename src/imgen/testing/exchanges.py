"""What a :class:`~imgen.testing.LocalServer` records and what it answers with.

A test scripts answers (:class:`Reply`, :class:`Delay`, :class:`Reset`) or routes
requests to handlers that turn a :class:`RecordedRequest` into a :class:`Reply`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import quote

__all__ = ["Delay", "Handler", "RecordedRequest", "Reply", "Reset", "Step"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    Attributes:
        method: The HTTP method, upper-case (``"POST"``).
        path: The request path without the query string, percent-decoded
            (``"/prompt/a red fox"``).
        query: The parsed query string; each name maps to all its values.
        headers: The request headers with lower-cased names. When a header
            is repeated, the last value wins.
        body: The raw request body, already de-chunked.
        raw_path: The path exactly as sent, percent-encoding kept
            (``"/prompt/a%20red%20fox"``); it tells ``a%2Fb`` from ``a/b``.
            Defaults to ``path`` encoded.
        path_params: The values of the placeholders of the route that
            matched, decoded (``{"prompt": "a red fox"}``); empty when no
            pattern route matched.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""
    path_params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.raw_path:
            object.__setattr__(self, "raw_path", quote(self.path))

    def json(self) -> Any:
        """Decode the body as JSON.

        Returns:
            The decoded JSON value.

        Raises:
            json.JSONDecodeError: If the body is not valid JSON.
        """
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """A canned HTTP response.

    ``Content-Length`` is always computed from ``body``; a value given in
    ``headers`` is ignored.

    Attributes:
        status: The HTTP status code.
        body: The response body.
        headers: Extra response headers.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """Build a reply whose body is ``payload`` encoded as JSON.

        Args:
            payload: Any JSON-serialisable value.
            status: The HTTP status code.
            headers: Extra response headers; ``Content-Type`` defaults to
                ``application/json``.

        Returns:
            The reply.
        """
        return cls(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )


@dataclass(frozen=True)
class Delay:
    """A scripted step that waits before answering.

    Only the delayed request waits: every connection has its own thread, so
    other requests are answered meanwhile. If the server stops during the
    wait, the connection is dropped without an answer.

    Attributes:
        seconds: How long to wait.
        then: The reply to send after the wait; ``None`` lets the route
            handler answer.
    """

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class Reset:
    """A scripted step that drops the connection without answering.

    The socket is closed with ``SO_LINGER`` set to zero, so the client sees a
    TCP reset (``ConnectionResetError``) instead of a response.
    """


Step: TypeAlias = Reply | Delay | Reset
"""One scripted answer: see :meth:`LocalServer.script`."""

Handler: TypeAlias = Callable[[RecordedRequest], Reply]
"""A route handler: receives the request and returns the reply to send."""
