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
            server.route("GET", "/files/{name}", lambda request: Reply(body=b"..."))
            server.script(Reply.json({"error": {"message": "busy"}}, status=429))
            client = OpenAI(base_url=server.url + "/v1", api_key="test")
            ...  # The first request gets the 429; the retry reaches the route.
            assert len(server.requests_to("/v1/images/generations")) == 2
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import weakref
from collections import deque
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

from imgen.testing.exchanges import Delay, Handler, RecordedRequest, Reply, Reset, Step
from imgen.testing.routes import PathPattern

__all__ = ["Delay", "Handler", "LocalServer", "RecordedRequest", "Reply", "Reset", "Step"]


class LocalServer:
    """A threaded HTTP/1.1 server on ``127.0.0.1`` for backend tests.

    The server binds a free port on :meth:`start` and serves from a daemon
    thread; each connection gets its own thread, and connections are kept
    alive so SDK connection pools reuse them. Use it as a context manager::

        with LocalServer() as server:
            server.route("GET", "/health", lambda request: Reply.json({"ok": True}))
            server.route("POST", "/prompt/{prompt}", lambda request: ...)
            ...

    A request is answered, in order of precedence, by:

    1. the next step scripted for a path it matches (see :meth:`script`),
       then the next step scripted for any path;
    2. the route for its method and exact path;
    3. the first route, in registration order, for its method whose pattern
       matches the path (see :meth:`route` for patterns);
    4. a 405 JSON error, with an ``Allow`` header, when routes match the path
       for other methods only; otherwise a 404 JSON error.

    A route handler that raises produces a 500 whose body names the
    exception. GET, POST, PUT, PATCH and DELETE are served; other methods get
    a 501 and are not recorded.

    Subclasses may add attributes and methods of any name: the server has no
    private methods to override by accident, and keeps its state off the
    instance, where no attribute a subclass sets can replace it.
    """

    def __init__(self) -> None:
        """Create a server; nothing is bound until :meth:`start`."""
        _STATES[id(self)] = _ServerState()
        weakref.finalize(self, _STATES.pop, id(self), None)

    @property
    def url(self) -> str:
        """The base URL, ``"http://127.0.0.1:PORT"``, without a trailing slash.

        Raises:
            RuntimeError: If the server has not been started.
        """
        httpd = _state_of(self).httpd
        if httpd is None:
            raise RuntimeError("LocalServer is not started")
        host, port = httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order.

        Requests answered by a scripted step (including :class:`Reset`) and
        requests that matched no route are included.
        """
        state = _state_of(self)
        with state.lock:
            return list(state.requests)

    @property
    def connections(self) -> int:
        """How many TCP connections the server has accepted so far."""
        state = _state_of(self)
        with state.lock:
            return state.connections

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Return the requests received for ``path``, in arrival order.

        Args:
            path: A decoded path without a query string (``"/prompt/a red fox"``),
                or a route pattern (``"/prompt/{prompt}"``) to get every request
                it matches.

        Returns:
            The matching requests, whatever their method.
        """
        pattern = PathPattern(path)
        return [r for r in self.requests if pattern.match(r.raw_path) is not None]

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Register the handler for ``method`` and ``path``.

        ``path`` is a literal path or a pattern, matched against each
        segment of the request path after percent-decoding it, and never
        against the query string:

        - ``/v1/images`` matches that path only;
        - ``/prompt/{prompt}`` matches one segment, or part of one
          (``/models/{model}:predict``), and puts its decoded value in
          ``request.path_params["prompt"]``;
        - ``/files/{rest:path}``, a placeholder of kind ``path`` as the last
          segment, matches the rest of the path, slashes included: a prefix
          route for ``/files/`` and everything under it.

        An exact path wins over patterns; patterns are tried in the order
        they were registered. Registering the same method and path again
        replaces the handler and keeps its place in that order.

        Args:
            method: The HTTP method, in any case.
            path: The literal path or pattern.
            handler: Called with each matching request; returns the reply.

        Raises:
            ValueError: If the pattern is malformed (see :class:`PathPattern`).
        """
        pattern = PathPattern(path)
        state = _state_of(self)
        with state.lock:
            state.routes[(method.upper(), path)] = (pattern, handler)

    def script(self, *steps: Step, path: str | None = None) -> None:
        """Queue steps that answer the next requests instead of the routes.

        Each request consumes one step; once the queue is empty, requests
        reach the routes again. Calling this again appends to the queue.

        Args:
            *steps: The steps, in the order they should be consumed.
            path: Only requests to this path (a decoded path or a route
                pattern) consume the steps; ``None`` means requests to any
                path. Steps queued for a path are consumed before steps
                queued for any path.

        Raises:
            ValueError: If ``path`` is a malformed pattern.
        """
        pattern = PathPattern(path) if path is not None else None
        state = _state_of(self)
        with state.lock:
            state.scripts.setdefault(path, (pattern, deque()))[1].extend(steps)

    def clear_script(self) -> int:
        """Drop every scripted step not consumed yet.

        Returns:
            How many steps were dropped.
        """
        state = _state_of(self)
        with state.lock:
            dropped = sum(len(queue) for _, queue in state.scripts.values())
            state.scripts.clear()
        return dropped

    def start(self) -> LocalServer:
        """Bind a free port on ``127.0.0.1`` and start serving.

        Returns:
            This server, so ``server = LocalServer().start()`` works.

        Raises:
            RuntimeError: If the server was already started.
        """
        state = _state_of(self)
        if state.httpd is not None:
            raise RuntimeError("LocalServer was already started")
        state.httpd = _HTTPServer(state)
        state.thread = threading.Thread(
            target=state.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalServer {self.url}",
            daemon=True,
        )
        state.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and cut pending delays short.

        Returns promptly even while a :class:`Delay` is waiting. Stopping a
        server that is not running does nothing.
        """
        state = _state_of(self)
        if state.httpd is None or state.thread is None or state.stopping.is_set():
            return
        state.stopping.set()
        state.httpd.shutdown()
        state.httpd.server_close()
        state.thread.join()
        with state.lock:
            open_connections = list(state.open)
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


def _state_of(server: LocalServer) -> _ServerState:
    state = _STATES.get(id(server))
    if state is None:
        raise RuntimeError(
            f"{type(server).__name__}.__init__ did not call LocalServer.__init__: add "
            "super().__init__() to it."
        )
    return state


_Route: TypeAlias = tuple[PathPattern, Handler]
_Script: TypeAlias = tuple[PathPattern | None, deque[Step]]


class _ServerState:
    """Everything a `LocalServer` holds, kept apart so subclasses cannot clobber it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.routes: dict[tuple[str, str], _Route] = {}
        self.scripts: dict[str | None, _Script] = {}
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.open: set[socket.socket] = set()
        self.stopping = threading.Event()
        self.httpd: _HTTPServer | None = None
        self.thread: threading.Thread | None = None

    def opened(self, connection: socket.socket) -> None:
        with self.lock:
            self.connections += 1
            self.open.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self.lock:
            self.open.discard(connection)

    def answer(self, request: RecordedRequest) -> Reply | Reset:
        """Record ``request`` and decide how to answer it."""
        with self.lock:
            handler, request, allowed = self._find_route(request)
            self.requests.append(request)
            step = self._next_step(request.raw_path)
        if isinstance(step, Delay):
            if self.stopping.wait(step.seconds):
                return Reset()
            step = step.then
        if step is not None:
            return step
        if handler is None:
            if allowed:
                message = f"{request.method} is not allowed for {request.path}"
                headers = {"Allow": ", ".join(sorted(allowed))}
                return Reply.json({"error": {"message": message}}, status=405, headers=headers)
            message = f"no route for {request.method} {request.path}"
            return Reply.json({"error": {"message": message}}, status=404)
        try:
            return handler(request)
        except Exception as error:
            message = f"route handler raised {type(error).__name__}: {error}"
            return Reply.json({"error": {"message": message}}, status=500)

    def _find_route(
        self, request: RecordedRequest
    ) -> tuple[Handler | None, RecordedRequest, set[str]]:
        """The handler, the request with its path parameters, and the methods the path allows.

        The caller holds the lock.
        """
        exact = self.routes.get((request.method, request.path))
        if exact is not None and exact[0].is_literal:
            return exact[1], request, set()
        allowed: set[str] = set()
        for (method, _), (pattern, handler) in self.routes.items():
            values = pattern.match(request.raw_path)
            if values is None:
                continue
            if method == request.method:
                return handler, replace(request, path_params=values), set()
            allowed.add(method)
        return None, request, allowed

    def _next_step(self, raw_path: str) -> Step | None:
        """Pop the next scripted step for the path; the caller holds the lock."""
        for pattern, queue in self.scripts.values():
            if queue and pattern is not None and pattern.match(raw_path) is not None:
                return queue.popleft()
        anywhere = self.scripts.get(None)
        if anywhere and anywhere[1]:
            return anywhere[1].popleft()
        return None


# Each server's state by id(server), dropped when the server is collected. Off the instance,
# so a subclass may set attributes of any name (a mangled `__state` included) without harm.
_STATES: dict[int, _ServerState] = {}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, state: _ServerState) -> None:
        self.state = state
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
        self.server.state.opened(self.connection)

    def finish(self) -> None:
        self.server.state.closed(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean: log nothing."""

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=unquote(url.path),
            query=parse_qs(url.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
            raw_path=url.path,
        )
        answer = self.server.state.answer(request)
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
