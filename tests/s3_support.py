"""A real S3-compatible server on 127.0.0.1 for the tests: moto in server mode, in a process of
its own. s3fs talks to it over HTTP exactly as to AWS.

Imported by test modules as `s3_support` (the tests folder is on pytest's pythonpath).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

# What the tests pass as the secret access key: it must never show up anywhere.
SECRET_KEY = "imgen-test-secret-9f8e7d6c5b4a"
ACCESS_KEY = "AKIAIMGENTESTKEY0001"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server(*, deny_all: bool = False) -> Iterator[str]:
    """Run moto's S3 server on 127.0.0.1; yield its endpoint URL.

    Args:
        deny_all: Turn on moto's access checks with no user known, so every request is denied
            (a bucket the credentials may not write to).
    """
    port = free_port()
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if deny_all else {})}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.05)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def s3_environment(endpoint: str) -> dict[str, str]:
    """The environment variables that point boto (and so s3fs) at `endpoint`, with the test
    keys."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        # No retries: a test of an unreachable endpoint should not wait for them.
        "AWS_MAX_ATTEMPTS": "1",
    }
