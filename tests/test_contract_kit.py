"""The conformance kit itself: its async checks fail the backends that break them, it skips
with a reason where a check does not apply, and a class-scoped model serves the whole kit.

Each case writes a real test module that subclasses `BackendContract` and runs it with pytest's
own `pytester`, the way a backend author runs the kit.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import importlib_metadata  # noqa: F401  (see below)
import pytest

from imgen.testing.inspection import admits_plain_text, base64_problem, names_a_credential

pytest_plugins = ["pytester"]

# importlib_metadata puts its finder on sys.meta_path when first imported, and takes finding
# distributions away from the stdlib's. pytester sets sys.meta_path back after each run; were
# the first import inside a run, the stdlib would be left finding no distribution at all.

BACKENDS = '''
import asyncio
import urllib.error
import urllib.request
from typing import Any

import pytest

from pydantic import PrivateAttr

from imgen.testing import AsyncFakeImageGeneration, BackendContract, LocalServer, Reply


class OwnGather(AsyncFakeImageGeneration):
    """Runs every prompt of a batch at once, bypassing the engine and its limit."""

    def generate(self, inputs, num_generations=1, **kwargs):
        async def everything():
            calls = (self.agenerate(p, num_generations, **kwargs) for p in inputs)
            return await asyncio.gather(*calls)

        return asyncio.run(everything())


class NoTimeoutRetries(AsyncFakeImageGeneration):
    """Classifies only its own errors, and so never retries a timed-out attempt."""

    def is_retryable(self, exc):
        return isinstance(exc, ConnectionError)


class LeavesATask(AsyncFakeImageGeneration):
    """Shields its work from cancellation: the work goes on after the batch is cancelled."""

    async def agenerate(self, input: str, num_generations: int = 1, seed: int = 0):
        """Make images.

        Args:
            input: The prompt.
            num_generations: Images to make.
            seed: The first seed.
        """
        work = asyncio.ensure_future(super().agenerate(input, num_generations, seed))
        return await asyncio.shield(work)


class ReusesImgensNames(AsyncFakeImageGeneration):
    """Names its own helpers like imgen's: its batch runner and logger replace the engine's."""

    _logger: Any = PrivateAttr(None)

    async def _run_batch(self, inputs, num_generations, kwargs):
        return [await self.agenerate(p, num_generations, **kwargs) for p in inputs]


class ServiceError(Exception):
    def __init__(self, status_code):
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class HttpBackend(AsyncFakeImageGeneration):
    """Asks a service before making its images; `sdk_retries` retries a 5xx on its own."""

    base_url: str = ""
    sdk_retries: int = 0

    async def agenerate(self, input: str, num_generations: int = 1, seed: int = 0):
        """Make images.

        Args:
            input: The prompt.
            num_generations: Images to make.
            seed: The first seed.
        """
        for _ in range(1 + self.sdk_retries):
            status = await asyncio.to_thread(self._post)
            if status < 500:
                return await super().agenerate(input, num_generations, seed)
        raise ServiceError(status)

    def _post(self):
        try:
            with urllib.request.urlopen(self.base_url + "/v1/images", data=b"{}") as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code


@pytest.fixture
def server():
    with LocalServer() as running:
        running.route("POST", "/v1/images", lambda request: Reply.json({}))
        yield running


class HttpContract(BackendContract):
    @pytest.fixture
    def local_server(self, server):
        return server
'''

ASYNC_CHECKS = (
    "test_in_flight_calls_stay_within_max_concurrency or "
    "test_timed_out_attempts_are_retried_max_retries_times or "
    "test_each_attempt_sends_one_request or test_cancellation_leaves_no_task_running"
)


def run_kit(pytester: pytest.Pytester, contract: str, *args: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_kit=BACKENDS + textwrap.dedent(contract))
    return pytester.runpytest("-p", "no:cacheprovider", "-rs", *args)


def failed_checks(result: pytest.RunResult) -> set[str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {r.nodeid.rpartition("::")[2].partition("[")[0] for r in reports if r.failed}


def contract_for(backend: str, **fields: Any) -> str:
    settings = ", ".join(f"{name}={value!r}" for name, value in fields.items())
    return f"""
    class TestKit(BackendContract):
        @pytest.fixture
        def model(self):
            with {backend}({settings}) as model:
                yield model
    """


def test_a_well_behaved_async_backend_passes_the_async_checks(pytester: pytest.Pytester) -> None:
    result = run_kit(
        pytester, contract_for("AsyncFakeImageGeneration", latency=0.01), "-k", ASYNC_CHECKS
    )
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(["*no local_server fixture*"])


@pytest.mark.parametrize(
    ("backend", "fields", "failing", "says"),
    [
        ("OwnGather", {}, "in_flight_calls_stay_within_max_concurrency", "ran at once"),
        ("NoTimeoutRetries", {}, "timed_out_attempts_are_retried_max_retries_times", "1 attempts"),
        ("LeavesATask", {"latency": 5.0}, "cancellation_leaves_no_task_running", "tasks still"),
    ],
)
def test_the_async_checks_fail_backends_that_break_the_engine(
    pytester: pytest.Pytester, backend: str, fields: dict[str, Any], failing: str, says: str
) -> None:
    result = run_kit(pytester, contract_for(backend, **fields), "-k", ASYNC_CHECKS)
    assert f"test_{failing}" in failed_checks(result)
    result.stdout.fnmatch_lines([f"*{says}*"])


def test_the_kit_fails_a_backend_that_redefines_imgens_private_names(
    pytester: pytest.Pytester,
) -> None:
    result = run_kit(
        pytester,
        contract_for("ReusesImgensNames"),
        "-k",
        "test_no_private_name_of_imgen_is_redefined",
    )
    assert failed_checks(result) == {"test_no_private_name_of_imgen_is_redefined"}
    result.stdout.fnmatch_lines(["*ReusesImgensNames._logger, ReusesImgensNames._run_batch*"])


@pytest.mark.parametrize(
    ("sdk_retries", "sent"), [(0, None), (2, "4 requests where the engine allows 3 attempts")]
)
def test_requests_are_counted_at_the_local_server(
    pytester: pytest.Pytester, sdk_retries: int, sent: str | None
) -> None:
    contract = f"""
    class TestKit(HttpContract):
        @pytest.fixture
        def model(self, server):
            with HttpBackend(base_url=server.url, sdk_retries={sdk_retries}) as model:
                yield model
    """
    result = run_kit(pytester, contract, "-k", "test_each_attempt_sends_one_request")
    if sent is None:
        result.assert_outcomes(passed=1)
    else:
        assert failed_checks(result) == {"test_each_attempt_sends_one_request"}
        result.stdout.fnmatch_lines([f"*{sent}*the SDK or the backend retries on its own*"])


def test_a_class_scoped_model_loads_once_and_is_left_as_it_was(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    loads = tmp_path / "loads.txt"
    contract = f"""
    from pathlib import Path

    from imgen.testing import AsyncFakeImageGeneration

    class TestKit(BackendContract):
        @pytest.fixture(scope="class")
        @classmethod
        def model(cls):
            with AsyncFakeImageGeneration(max_concurrency=5, max_retries=1, timeout=9.0) as model:
                with Path({str(loads)!r}).open("a") as log:
                    log.write("loaded\\n")
                yield model
                # Whatever the checks changed for their own use, they set back.
                assert (model.max_concurrency, model.max_retries, model.timeout) == (5, 1, 9.0)
                assert model.on_error == "raise"
    """
    result = run_kit(pytester, contract)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == outcomes.get("errors", 0) == 0, result.stdout.str()
    result.assert_outcomes(passed=28, skipped=4)
    assert loads.read_text() == "loaded\n"


def test_model_and_server_fixtures_of_the_module_serve_the_kit(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Module-level fixtures, of module scope, are the kit's: it defines none to shadow them."""
    loads = tmp_path / "loads.txt"
    contract = f"""
    from pathlib import Path

    @pytest.fixture(scope="module")
    def local_server(server_of_the_module):
        return server_of_the_module

    @pytest.fixture(scope="module")
    def server_of_the_module():
        with LocalServer() as running:
            running.route("POST", "/v1/images", lambda request: Reply.json({{}}))
            yield running

    @pytest.fixture(scope="module")
    def model(local_server):
        with HttpBackend(base_url=local_server.url) as model:
            with Path({str(loads)!r}).open("a") as log:
                log.write("loaded\\n")
            yield model

    class TestKit(BackendContract):
        pass
    """
    checks = "test_output_contract or test_empty_batch or " + ASYNC_CHECKS
    result = run_kit(pytester, contract, "-k", checks)
    # The request count ran against the module's server: nothing skipped.
    result.assert_outcomes(passed=6)
    assert loads.read_text() == "loaded\n"


def test_checks_that_do_not_apply_skip_with_their_reason(pytester: pytest.Pytester) -> None:
    contract = """
    from imgen.testing import FakeImageGeneration

    class TestKit(BackendContract):
        @pytest.fixture(scope="module")
        def model(self):
            with FakeImageGeneration() as model:
                yield model
    """
    result = run_kit(pytester, contract, "-W", "ignore::pytest.PytestRemovedIn10Warning")
    result.assert_outcomes(passed=25, skipped=7)
    result.stdout.fnmatch_lines_random(
        [
            "*no credential-named fields*",
            "*no secret fields*",
            "*sync backend: the async engine's limits do not apply*",
        ]
    )


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("api_key", True),
        ("apiKey", True),
        ("access_token", True),
        ("client_secret", True),
        ("password", True),
        ("credentials", True),
        ("auth", True),
        ("session_cookies", True),
        ("keyboard", False),
        ("tokenizer", False),
        ("monkey", False),
        ("model", False),
    ],
)
def test_credential_names(name: str, credential: bool) -> None:
    assert names_a_credential(name) is credential


@pytest.mark.parametrize(
    ("annotation", "plain"),
    [
        (str, True),
        (bytes, True),
        (Any, True),
        ("str | None", True),
        ("SecretStr | str", True),
        ("SecretStr | None", False),
        ("Annotated[SecretStr | None, 1]", False),
        ("Annotated[str | None, 1]", True),
        (int, False),
        ("Literal['bearer', 'basic']", False),
        ("dict[str, str]", False),
    ],
)
def test_types_that_hold_plain_text(annotation: Any, plain: bool) -> None:
    from typing import Annotated, Literal  # noqa: F401  (named by the annotations above)

    from pydantic import SecretStr  # noqa: F401

    resolved = eval(annotation) if isinstance(annotation, str) else annotation
    assert admits_plain_text(resolved) is plain


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("aGVsbG8=", None),
        ("aGVsbG8gd29ybGQh", None),
        ("data:image/png;base64,aGVsbG8=", "data-URL prefix 'data:image/png;base64,'"),
        ("aGVs\nbG8=", "whitespace"),
        ("aGVsbG8", "not a multiple of 4"),
        ("aGVs*G8=", "not valid base64"),
        ("aGVsbG8-", "not valid base64"),
        ("aG=sbG8=", "not valid base64"),
        (b"aGVsbG8=", "bytes, not a base64 string"),
    ],
)
def test_strict_base64(text: Any, problem: str | None) -> None:
    found = base64_problem(text)
    assert found == problem if problem is None else problem in (found or "")


def test_a_backend_no_plugin_provides_is_named_with_the_fix() -> None:
    from typing import ClassVar

    from imgen.registry import Registry
    from imgen.testing import FakeImageGeneration
    from imgen.testing.inspection import info_for

    class Unpackaged(FakeImageGeneration):
        backend_name: ClassVar[str] = "unpackaged-xyz"

    class OwnFake(FakeImageGeneration):
        """Not the class the `fake` entry point registers."""

    with pytest.raises(AssertionError, match=r"No installed plugin provides .*pip install -e \."):
        info_for(Registry(), Unpackaged)
    with pytest.raises(AssertionError, match=r"'fake' is imgen\.testing\.fake:Fake.*, not "):
        info_for(Registry(), OwnFake)
    assert info_for(Registry(), FakeImageGeneration).name == "fake"
