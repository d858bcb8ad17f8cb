"""A small, real HTTP server for exercising backend SDKs in tests.

Backends talk to remote services through their official SDKs. Mocking those
SDKs hides bugs in how a backend uses them, so backend tests point the real
SDK at a :class:`LocalServer` instead: a threaded HTTP/1.1 server on
``127.0.0.1`` that answers with canned replies, records every request, and
can inject faults (slow answers, dropped connections, error statuses).

Example:
    Point a real SDK at the server::

        with LocalServer() as server:
            server.route("POST", "/v1/images/generations", lambda request: Reply.json({"data": []}))
            server.script(Reply.json({"error": {"message": "busy"}}, status=429))
            client = OpenAI(base_url=server.url + "/v1", api_key="test")
            ...  # The first request gets the 429; the retry reaches the route.
            assert len(server.requests_to("/v1/images/generations")) == 2
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import parse_qs, urlsplit

__all__ = ["Delay", "Handler", "LocalServer", "RecordedRequest", "Reply", "Reset", "Step"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    Attributes:
        method: The HTTP method, upper-case (``"POST"``).
        path: The request path without the query string (``"/v1/models"``).
        query: The parsed query string; each name maps to all its values.
        headers: The request headers with lower-cased names. When a header
            is repeated, the last value wins.
        body: The raw request body, already de-chunked.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

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


class LocalServer:
    """A threaded HTTP/1.1 server on ``127.0.0.1`` for backend tests.

    The server binds a free port on :meth:`start` and serves from a daemon
    thread; each connection gets its own thread, and connections are kept
    alive so SDK connection pools reuse them. Use it as a context manager::

        with LocalServer() as server:
            server.route("GET", "/health", lambda request: Reply.json({"ok": True}))
            ...

    A request is answered, in order of precedence, by the next step scripted
    for its path, the next step scripted for any path, the route registered
    for its method and path, or a 404 JSON error. A route handler that raises
    produces a 500 whose body names the exception. GET, POST, PUT, PATCH and
    DELETE are served; other methods get a 501 and are not recorded.
    """

    def __init__(self) -> None:
        """Create a server; nothing is bound until :meth:`start`."""
        self._lock = threading.Lock()
        self._routes: dict[tuple[str, str], Handler] = {}
        self._scripts: dict[str | None, deque[Step]] = {}
        self._requests: list[RecordedRequest] = []
        self._connections = 0
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, ``"http://127.0.0.1:PORT"``, without a trailing slash.

        Raises:
            RuntimeError: If the server has not been started.
        """
        if self._httpd is None:
            raise RuntimeError("LocalServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order.

        Requests answered by a scripted step (including :class:`Reset`) and
        requests that matched no route are included.
        """
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """How many TCP connections the server has accepted so far."""
        with self._lock:
            return self._connections

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Return the requests received for ``path``, in arrival order.

        Args:
            path: The request path, without a query string.

        Returns:
            The matching requests, whatever their method.
        """
        return [request for request in self.requests if request.path == path]

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Register the handler for ``method`` and ``path``.

        Registering the same method and path again replaces the handler.

        Args:
            method: The HTTP method, in any case.
            path: The request path; the query string is ignored when matching.
            handler: Called with each matching request; returns the reply.
        """
        with self._lock:
            self._routes[(method.upper(), path)] = handler

    def script(self, *steps: Step, path: str | None = None) -> None:
        """Queue steps that answer the next requests instead of the routes.

        Each request consumes one step; once the queue is empty, requests
        reach the routes again. Calling this again appends to the queue.

        Args:
            *steps: The steps, in the order they should be consumed.
            path: Only requests to this path consume the steps; ``None``
                means requests to any path. Steps queued for a path are
                consumed before steps queued for any path.
        """
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(steps)

    def start(self) -> LocalServer:
        """Bind a free port on ``127.0.0.1`` and start serving.

        Returns:
            This server, so ``server = LocalServer().start()`` works.

        Raises:
            RuntimeError: If the server was already started.
        """
        if self._httpd is not None:
            raise RuntimeError("LocalServer was already started")
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalServer {self.url}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and cut pending delays short.

        Returns promptly even while a :class:`Delay` is waiting. Stopping a
        server that is not running does nothing.
        """
        if self._httpd is None or self._thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        with self._lock:
            open_connections = list(self._open)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # Its handler may have closed it already.
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> LocalServer:
        """Start the server.

        Returns:
            This server.
        """
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)

    def _answer(self, request: RecordedRequest) -> Reply | Reset:
        """Record ``request`` and decide how to answer it."""
        with self._lock:
            self._requests.append(request)
            step = self._next_step(request.path)
            handler = self._routes.get((request.method, request.path))
        if isinstance(step, Delay):
            if self._stopping.wait(step.seconds):
                return Reset()
            step = step.then
        if step is not None:
            return step
        if handler is None:
            message = f"no route for {request.method} {request.path}"
            return Reply.json({"error": {"message": message}}, status=404)
        try:
            return handler(request)
        except Exception as error:
            message = f"route handler raised {type(error).__name__}: {error}"
            return Reply.json({"error": {"message": message}}, status=500)

    def _next_step(self, path: str) -> Step | None:
        """Pop the next scripted step for ``path``; the caller holds the lock."""
        for key in (path, None):
            queue = self._scripts.get(key)
            if queue:
                return queue.popleft()
        return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, owner: LocalServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-exchange is routine in fault tests; any
        # other error is a bug in this module and keeps the default report.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._opened(self.connection)

    def finish(self) -> None:
        self.server.owner._closed(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean: log nothing."""

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
        )
        answer = self.server.owner._answer(request)
        if isinstance(answer, Reset):
            self._reset()
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # The CRLF that ends each chunk.
        while self.rfile.readline().strip():
            pass  # Trailer fields, up to the blank line that ends the body.
        return b"".join(chunks)

    def _reset(self) -> None:
        # With a zero linger, closing sends RST instead of FIN. The close takes
        # effect when finish() releases rfile, before socketserver would send
        # a FIN through shutdown(); that later shutdown fails harmlessly.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
