"""An unreachable Hub is found out in seconds, not after half a minute of retries.

Each case runs `imgen generate` in a fresh process with HF_ENDPOINT pointing at a port on
127.0.0.1 that refuses connections, or at a listener that accepts them and never answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgen.testing import LocalServer
from imgen_diffusers.hub import PROBE_TIMEOUT, hub_unreachable_reason

IMGEN = "from imgen.cli import main; main()"
REPO_ID = "imgen-tests/tiny-sd"
FAST = ["-p", "num_inference_steps=1", "-p", "height=64", "-p", "width=64", "-O", "device=cpu"]
# Well under the ~30 s of retries an unreachable Hub used to cost, with room for a slow start.
PROMPT_FAILURE_SECONDS = PROBE_TIMEOUT + 12


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class SilentListener:
    """A server on 127.0.0.1 that reads the requests sent to it and never answers them."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._connections: list[socket.socket] = []
        self.request_lines: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed
                return
            self._connections.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        received = b""
        while b"\r\n" not in received:
            try:
                chunk = connection.recv(1024)
            except OSError:
                return
            if not chunk:
                return
            received += chunk
        self.request_lines.append(received.split(b"\r\n")[0].decode())

    def close(self) -> None:
        self._socket.close()
        for connection in self._connections:
            connection.close()


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()


def run_imgen(
    *args: str, env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", IMGEN, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, time.monotonic() - started


def hub_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    """An empty Hub cache of its own and the given endpoint; no offline mode."""
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_CACHE": str(tmp_path / "hub-cache"),
        "HF_HUB_OFFLINE": "",
    }


def assert_unreachable_message(stderr: str, endpoint: str) -> None:
    assert f"Cannot reach the Hugging Face Hub at {endpoint}" in stderr
    assert repr(REPO_ID) in stderr
    for fix in ("local pipeline folder", "HF_HUB_OFFLINE=1", "HF_ENDPOINT"):
        assert fix in stderr
    assert "model_index.json" not in stderr  # not diffusers' misleading "no such file"


def test_refused_connection_fails_at_once_with_the_fixes(tmp_path: Path, closed_port: int) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    result, seconds = run_imgen(
        "generate",
        f"diffusers:{REPO_ID}",
        "a red fox",
        env=hub_env(tmp_path, endpoint),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert_unreachable_message(result.stderr, endpoint)
    assert "Connection refused" in result.stderr or "ConnectError" in result.stderr
    assert seconds < PROMPT_FAILURE_SECONDS
    assert not list(tmp_path.glob("*.png"))


def test_endpoint_that_never_answers_times_out_after_the_probe(
    tmp_path: Path, silent_listener: SilentListener
) -> None:
    result, seconds = run_imgen(
        "generate",
        f"diffusers:{REPO_ID}",
        "a red fox",
        env=hub_env(tmp_path, silent_listener.url),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert_unreachable_message(result.stderr, silent_listener.url)
    assert silent_listener.request_lines == ["HEAD / HTTP/1.1"]  # the probe, and no retries
    assert f"no answer within {PROBE_TIMEOUT:g} s" in result.stderr
    assert seconds < PROMPT_FAILURE_SECONDS


def test_hub_offline_without_the_pipeline_in_the_cache_says_so(tmp_path: Path) -> None:
    env = {**hub_env(tmp_path, "http://127.0.0.1:9"), "HF_HUB_OFFLINE": "1"}
    result, _ = run_imgen("generate", f"diffusers:{REPO_ID}", "a red fox", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "not in the local Hugging Face cache" in result.stderr
    assert "HF_HUB_OFFLINE=1" in result.stderr


def cache_pipeline(cache: Path, repo_id: str, pipeline: Path) -> None:
    """Lay `pipeline` out in a Hub cache as if `repo_id` had been downloaded at main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(pipeline, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_cached_pipeline_loads_from_the_cache_when_the_hub_is_out_of_reach(
    tmp_path: Path, silent_listener: SilentListener, tiny_pipeline_path: Path
) -> None:
    env = hub_env(tmp_path, silent_listener.url)
    cache_pipeline(Path(env["HF_HUB_CACHE"]), REPO_ID, tiny_pipeline_path)
    result, _ = run_imgen(
        "generate", f"diffusers:{REPO_ID}", "a red fox", "-o", "out", *FAST, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["a-red-fox-0.png"]
    # The probe found the Hub silent; the pipeline then came from the cache, with no download
    # attempt waiting on the Hub (huggingface_hub may still try its own best-effort telemetry).
    assert silent_listener.request_lines[0] == "HEAD / HTTP/1.1"
    assert not [line for line in silent_listener.request_lines if REPO_ID in line]


def test_any_http_answer_means_reachable(closed_port: int, silent_listener: SilentListener) -> None:
    with LocalServer() as server:  # answers HEAD with 501: an answer all the same
        assert hub_unreachable_reason(server.url) is None
    assert "ConnectError" in (hub_unreachable_reason(f"http://127.0.0.1:{closed_port}") or "")
    assert hub_unreachable_reason(silent_listener.url, timeout=0.2) == "no answer within 0.2 s"
