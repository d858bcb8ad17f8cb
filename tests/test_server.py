"""Tests for imgen.testing.server, driven by real HTTP clients over loopback."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx2
import pytest

from imgen.testing.server import Delay, LocalServer, RecordedRequest, Reply, Reset


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def connect(server: LocalServer, timeout: float = 2.0) -> http.client.HTTPConnection:
    address = urlsplit(server.url)
    assert address.hostname == "127.0.0.1"
    assert address.port is not None
    return http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)


def fetch(
    server: LocalServer,
    method: str,
    path: str,
    body: bytes | None = None,
    timeout: float = 2.0,
) -> tuple[int, bytes]:
    connection = connect(server, timeout)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def ok(request: RecordedRequest) -> Reply:
    return Reply.json({"ok": True})


def test_route_replies_and_records_the_request(server: LocalServer) -> None:
    server.route("post", "/v1/images", lambda request: Reply.json({"echo": request.json()}))

    response = httpx2.post(
        f"{server.url}/v1/images?n=2&n=3&style=",
        json={"prompt": "a cat"},
        headers={"X-Api-Key": "secret"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"echo": {"prompt": "a cat"}}
    [request] = server.requests
    assert request.method == "POST"
    assert request.path == "/v1/images"
    assert request.query == {"n": ["2", "3"], "style": [""]}
    assert request.headers["x-api-key"] == "secret"
    assert json.loads(request.body) == {"prompt": "a cat"}
    assert request.json() == {"prompt": "a cat"}


def test_reply_sets_status_headers_and_content_length(server: LocalServer) -> None:
    reply = Reply(
        status=201, body=b"\x89PNG", headers={"Content-Type": "image/png", "Content-Length": "9"}
    )
    server.route("GET", "/image", lambda request: reply)
    reply_json = Reply.json([1], status=202, headers={"Content-Type": "text/json", "X-Id": "7"})
    server.route("GET", "/list", lambda request: reply_json)

    image = httpx2.get(f"{server.url}/image")
    listing = httpx2.get(f"{server.url}/list")

    assert (image.status_code, image.content) == (201, b"\x89PNG")
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-length"] == "4"
    assert (listing.status_code, listing.json()) == (202, [1])
    assert listing.headers["content-type"] == "text/json"
    assert listing.headers["x-id"] == "7"


def test_chunked_request_body_is_reassembled(server: LocalServer) -> None:
    server.route("PUT", "/upload", ok)
    connection = connect(server)

    connection.request("PUT", "/upload", body=iter([b"hello ", b"world"]), encode_chunked=True)
    response = connection.getresponse()
    response.read()
    connection.request("PUT", "/upload", body=b"again")
    second = connection.getresponse()
    second.read()
    connection.close()

    assert (response.status, second.status) == (200, 200)
    assert [request.body for request in server.requests] == [b"hello world", b"again"]
    assert server.connections == 1


def test_unknown_route_is_a_404_json_error(server: LocalServer) -> None:
    server.route("GET", "/known", ok)

    status, body = fetch(server, "POST", "/unknown")

    assert status == 404
    assert json.loads(body) == {"error": {"message": "no route for POST /unknown"}}
    assert [request.method for request in server.requests_to("/unknown")] == ["POST"]


def test_a_known_path_with_another_method_is_a_405_naming_the_allowed_ones(
    server: LocalServer,
) -> None:
    server.route("GET", "/known", ok)
    server.route("DELETE", "/known/{id}", ok)
    server.route("PUT", "/{any:path}", ok)

    response = httpx2.post(f"{server.url}/known")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
    assert response.json() == {"error": {"message": "POST is not allowed for /known"}}
    assert [request.method for request in server.requests_to("/known")] == ["POST"]


def test_a_raising_handler_is_a_500_naming_the_error(server: LocalServer) -> None:
    def broken(request: RecordedRequest) -> Reply:
        raise KeyError("prompt")

    server.route("GET", "/broken", broken)

    status, body = fetch(server, "GET", "/broken")

    assert status == 500
    assert "KeyError" in json.loads(body)["error"]["message"]
    assert "prompt" in json.loads(body)["error"]["message"]
    assert len(server.requests_to("/broken")) == 1


def test_path_matching_ignores_the_query_string(server: LocalServer) -> None:
    server.route("GET", "/models", ok)

    assert fetch(server, "GET", "/models?limit=1")[0] == 200
    assert server.requests_to("/models")[0].query == {"limit": ["1"]}


def test_scripted_steps_are_consumed_in_order_then_the_route_answers(
    server: LocalServer,
) -> None:
    server.route("GET", "/a", ok)
    server.route("GET", "/b", ok)
    server.script(Reply(status=500), Reply.json({"busy": True}, status=429))
    server.script(Reply(status=503))

    statuses = [fetch(server, "GET", path)[0] for path in ("/a", "/b", "/a", "/b", "/a")]

    assert statuses == [500, 429, 503, 200, 200]
    assert [request.path for request in server.requests] == ["/a", "/b", "/a", "/b", "/a"]


def test_path_scripts_leave_other_paths_alone(server: LocalServer) -> None:
    server.route("GET", "/a", ok)
    server.route("GET", "/b", ok)
    server.script(Reply(status=503), path="/a")

    statuses = [fetch(server, "GET", path)[0] for path in ("/b", "/a", "/a", "/b")]

    assert statuses == [200, 503, 200, 200]


def test_path_scripts_take_precedence_over_any_path_scripts(server: LocalServer) -> None:
    server.route("GET", "/a", ok)
    server.route("GET", "/b", ok)
    server.script(Reply(status=500))
    server.script(Reply(status=503), path="/a")

    statuses = [fetch(server, "GET", path)[0] for path in ("/a", "/a", "/b")]

    assert statuses == [503, 500, 200]


def test_delay_then_reply_or_route(server: LocalServer) -> None:
    server.route("GET", "/slow", ok)
    server.script(Delay(0.1, then=Reply(status=503)), Delay(0.1))

    started = time.monotonic()
    first = fetch(server, "GET", "/slow")
    second = fetch(server, "GET", "/slow")

    assert time.monotonic() - started >= 0.2
    assert first == (503, b"")
    assert second == (200, b'{"ok": true}')


def test_delay_times_out_the_client_without_blocking_others(server: LocalServer) -> None:
    server.route("GET", "/slow", ok)
    server.route("GET", "/fast", ok)
    server.script(Delay(30), path="/slow")
    slow_error: list[BaseException] = []

    def call_slow() -> None:
        try:
            fetch(server, "GET", "/slow", timeout=0.5)
        except BaseException as error:
            slow_error.append(error)

    slow = threading.Thread(target=call_slow)
    slow.start()
    while not server.requests_to("/slow"):
        time.sleep(0.005)
    assert fetch(server, "GET", "/fast", timeout=1)[0] == 200
    assert slow.is_alive(), "/fast was answered only after /slow gave up"
    slow.join(timeout=2)
    assert len(slow_error) == 1
    assert isinstance(slow_error[0], TimeoutError)

    started = time.monotonic()
    server.stop()  # The 30 s delay is still pending.
    assert time.monotonic() - started < 1.0


def test_stop_cuts_a_pending_delay_short() -> None:
    threads_before = set(threading.enumerate())
    server = LocalServer().start()
    server.script(Delay(30))
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            fetch(server, "GET", "/anything", timeout=5)
        except BaseException as error:
            outcome.append(error)

    client = threading.Thread(target=call)
    client.start()
    while not server.requests:
        time.sleep(0.005)

    started = time.monotonic()
    server.stop()
    client.join(timeout=1)
    server_threads = set(threading.enumerate()) - threads_before - {client}
    while any(thread.is_alive() for thread in server_threads) and time.monotonic() - started < 1:
        time.sleep(0.005)

    assert time.monotonic() - started < 1.0
    assert not client.is_alive()
    assert not any(thread.is_alive() for thread in server_threads), "the delay kept sleeping"
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConnectionError)


def test_reset_drops_the_connection_without_a_response(server: LocalServer) -> None:
    server.route("POST", "/generate", ok)
    server.script(Reset(), path="/generate")

    with pytest.raises(ConnectionResetError) as raised:
        fetch(server, "POST", "/generate", body=b"{}")

    # A RemoteDisconnected would mean a FIN (clean close), not a reset.
    assert type(raised.value) is ConnectionResetError
    with pytest.raises(httpx2.ReadError):
        server.script(Reset())
        httpx2.post(f"{server.url}/generate", content=b"{}")
    assert fetch(server, "POST", "/generate")[0] == 200
    assert [request.body for request in server.requests_to("/generate")] == [b"{}", b"{}", b""]


def test_64_concurrent_requests_are_served_in_parallel(server: LocalServer) -> None:
    everyone_arrived = threading.Barrier(64, timeout=2)

    def wait_for_all(request: RecordedRequest) -> Reply:
        everyone_arrived.wait()
        return Reply.json({"n": request.query["n"][0]})

    server.route("GET", "/together", wait_for_all)

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(lambda n: fetch(server, "GET", f"/together?n={n}"), range(64)))

    assert [status for status, _ in results] == [200] * 64
    assert [json.loads(body)["n"] for _, body in results] == [str(n) for n in range(64)]
    assert server.connections == 64
    assert len(server.requests_to("/together")) == 64


def test_keep_alive_reuses_one_connection(server: LocalServer) -> None:
    server.route("GET", "/ping", ok)

    with httpx2.Client(base_url=server.url) as client:
        statuses = [client.get("/ping").status_code for _ in range(5)]

    assert statuses == [200] * 5
    assert server.connections == 1


def test_keep_alive_round_trips_are_not_slowed_by_nagle(server: LocalServer) -> None:
    server.route("POST", "/echo", lambda request: Reply(body=request.body))
    connection = connect(server)

    started = time.monotonic()
    for n in range(20):
        connection.request("POST", "/echo", body=str(n).encode())
        assert connection.getresponse().read() == str(n).encode()
    elapsed = time.monotonic() - started
    connection.close()

    # With Nagle's algorithm on, each round trip stalls ~40 ms on delayed ACKs.
    assert elapsed < 0.4
    assert server.connections == 1


def test_stop_closes_idle_keep_alive_connections() -> None:
    server = LocalServer().start()
    server.route("GET", "/ping", ok)
    connection = connect(server)
    connection.request("GET", "/ping")
    connection.getresponse().read()

    server.stop()

    with pytest.raises(ConnectionError):
        connection.request("GET", "/ping")
        connection.getresponse()
    connection.close()
    assert len(server.requests) == 1


def test_lifecycle_errors() -> None:
    server = LocalServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    server.stop()  # A server that never started stops quietly.

    with server:
        assert server.url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    server.stop()  # Stopping twice is harmless.


# -- routing by method and path pattern ----------------------------------------------------


def echo_params(request: RecordedRequest) -> Reply:
    return Reply.json({"params": request.path_params, "path": request.path})


def test_placeholders_capture_decoded_segments(server: LocalServer) -> None:
    server.route("POST", "/prompt/{prompt}", echo_params)
    server.route("POST", "/models/{model}:predict", echo_params)

    fox = httpx2.post(f"{server.url}/prompt/a%20red%20fox%2C%20100%25")
    slash = httpx2.post(f"{server.url}/prompt/either%2For")
    model = httpx2.post(f"{server.url}/models/imagen-3.0:predict")
    nested = httpx2.post(f"{server.url}/prompt/two/segments")

    assert fox.json() == {
        "params": {"prompt": "a red fox, 100%"},
        "path": "/prompt/a red fox, 100%",
    }
    assert slash.json()["params"] == {"prompt": "either/or"}  # %2F stays inside the segment
    assert model.json()["params"] == {"model": "imagen-3.0"}
    assert nested.status_code == 404
    recorded = server.requests_to("/prompt/{prompt}")
    assert [(r.path, r.raw_path) for r in recorded] == [
        ("/prompt/a red fox, 100%", "/prompt/a%20red%20fox%2C%20100%25"),
        ("/prompt/either/or", "/prompt/either%2For"),
    ]
    assert recorded[1].path_params == {"prompt": "either/or"}
    assert server.requests_to("/prompt/a red fox, 100%") == [recorded[0]]


def test_a_path_placeholder_makes_a_prefix_route(server: LocalServer) -> None:
    server.route("GET", "/files/{rest:path}", echo_params)

    deep = httpx2.get(f"{server.url}/files/a/b%20c.png?size=2")
    empty = httpx2.get(f"{server.url}/files/")
    bare = httpx2.get(f"{server.url}/files")
    longer_name = httpx2.get(f"{server.url}/filesystem/x")

    assert deep.json()["params"] == {"rest": "a/b c.png"}
    assert empty.json()["params"] == {"rest": ""}
    assert (bare.status_code, longer_name.status_code) == (404, 404)


def test_an_exact_route_beats_patterns_and_patterns_go_in_registration_order(
    server: LocalServer,
) -> None:
    server.route("GET", "/items/{rest:path}", lambda request: Reply.json("prefix"))
    server.route("GET", "/items/{item}", lambda request: Reply.json("one item"))
    server.route("GET", "/items/special", lambda request: Reply.json("exact"))

    assert httpx2.get(f"{server.url}/items/special").json() == "exact"
    assert httpx2.get(f"{server.url}/items/other").json() == "prefix"
    # Registering a pattern again replaces its handler in place.
    server.route("GET", "/items/{rest:path}", lambda request: Reply.json("new prefix"))
    assert httpx2.get(f"{server.url}/items/other").json() == "new prefix"


def test_scripts_can_target_a_pattern(server: LocalServer) -> None:
    server.route("GET", "/jobs/{job}", ok)
    server.route("GET", "/health", ok)
    server.script(Reply(status=503), path="/jobs/{job}")

    assert httpx2.get(f"{server.url}/health").status_code == 200
    assert httpx2.get(f"{server.url}/jobs/7").status_code == 503
    assert httpx2.get(f"{server.url}/jobs/7").status_code == 200


def test_clear_script_drops_the_steps_not_consumed(server: LocalServer) -> None:
    server.route("GET", "/health", ok)
    server.script(Reply(status=503), Reply(status=502))
    server.script(Reply(status=500), path="/health")

    assert httpx2.get(f"{server.url}/health").status_code == 500
    assert server.clear_script() == 2
    assert httpx2.get(f"{server.url}/health").status_code == 200
    assert server.clear_script() == 0


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("no-slash", "must start with '/'"),
        ("/a/{x}/{x}", "uses the placeholder {x} twice"),
        ("/{rest:path}/more", "{rest:path} can only be the last segment"),
        ("/{n:int}", "{n:int} has an unknown kind 'int'"),
    ],
)
def test_malformed_patterns_are_refused(server: LocalServer, pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        server.route("GET", pattern, ok)


class AuthorServer(LocalServer):
    """A subclass written without knowing the server's internals, as backend authors do."""

    def __init__(self) -> None:
        super().__init__()
        self._routes = "mine"
        self._lock = None
        self._state = {}
        self._requests = []

    def _answer(self, request: RecordedRequest) -> Reply:
        return Reply.json({"clobbered": True})

    def _dispatch(self) -> None:
        raise AssertionError("never called by the server")

    def _next_step(self, path: str) -> None:
        raise AssertionError("never called by the server")


def test_subclasses_cannot_clobber_the_servers_internals() -> None:
    with AuthorServer() as server:
        server.route("GET", "/known", ok)
        assert httpx2.get(f"{server.url}/known").json() == {"ok": True}
        assert httpx2.get(f"{server.url}/unknown").status_code == 404
        assert len(server.requests) == 2
    # Nothing private that a subclass could replace by accident: only dunders.
    private = [
        name
        for name in [*dir(LocalServer), *dir(LocalServer())]
        if name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_a_subclass_of_the_same_name_may_set_any_attribute() -> None:
    """Even `self.__state` in a subclass also named LocalServer (the same mangled name)."""
    import imgen.testing

    class LocalServer(imgen.testing.LocalServer):  # an author's own, of the same name
        def __init__(self) -> None:
            super().__init__()
            self.__state = "the author's own"

    with LocalServer() as server:
        server.route("GET", "/known", ok)
        assert httpx2.get(f"{server.url}/known").json() == {"ok": True}
        assert httpx2.get(f"{server.url}/unknown").status_code == 404


def test_a_subclass_that_skips_the_servers_init_is_told_so() -> None:
    class Forgetful(LocalServer):
        def __init__(self) -> None:
            self.routes_of_mine: list[str] = []

    with pytest.raises(RuntimeError, match=r"Forgetful.__init__ did not call LocalServer"):
        Forgetful().start()
