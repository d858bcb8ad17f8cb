"""The base classes: the seed contract, the output contract, bad input, sync over async."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from core_backends import ProbeModel, SeedAsyncModel, SeedSyncModel
from imgen.errors import InvalidInputError
from imgen.images import decode_image


def assert_contract(outputs: list[list[dict[str, Any]]], inputs: int, n: int) -> None:
    assert len(outputs) == inputs
    for output in outputs:
        assert len(output) == 1
        assert len(output[0]["images"]) == n
        for b64 in output[0]["images"]:
            assert decode_image(b64).size == (8, 8)


def test_seed_style_sync_model_works_unchanged() -> None:
    model = SeedSyncModel()
    model.load()
    assert model.model_name == "seed-sync"
    assert model.logger.name == "imgen.models.seed-sync"
    assert_contract(model.generate_outputs(["a", "b", "c"], num_generations=2), 3, 2)


def test_seed_style_async_model_works_unchanged() -> None:
    model = SeedAsyncModel()
    model.load()
    assert_contract(model.generate(["a", "b"], num_generations=3), 2, 3)
    assert_contract(model.generate_outputs(["a"]), 1, 1)


def test_generate_outputs_loads_lazily_and_context_manager_unloads() -> None:
    model = SeedAsyncModel()
    assert not model.is_loaded
    model.generate_outputs(["x"])
    assert model.is_loaded
    with SeedSyncModel() as sync_model:
        assert sync_model.is_loaded
    assert not sync_model.is_loaded


def test_empty_inputs_return_empty_list(probe: ProbeModel) -> None:
    assert probe.generate([]) == []
    assert SeedSyncModel().generate_outputs([]) == []
    assert probe._calls == []


@pytest.mark.parametrize(
    ("inputs", "num_generations", "kwargs", "message"),
    [
        ("a prompt", 1, {}, "inputs must be a list"),
        (("a", "b"), 1, {}, "inputs must be a list"),
        (["ok", 7], 1, {}, "inputs[1] must be a string"),
        (["ok", ""], 1, {}, "inputs[1] is an empty prompt"),
        (["   "], 1, {}, "inputs[0] is an empty prompt"),
        (["ok"], 0, {}, "num_generations must be >= 1, got 0"),
        (["ok"], -2, {}, "num_generations must be >= 1, got -2"),
        (["ok"], 2.0, {}, "num_generations must be an int"),
        (["ok"], True, {}, "num_generations must be an int"),
        (["ok"], 1, {"tga": "x"}, "Unknown generation kwarg 'tga'"),
        (["ok"], 1, {"count": "many"}, "Invalid generation kwarg count='many'"),
    ],
)
def test_bad_input_is_rejected_before_any_call(
    probe: ProbeModel, inputs: Any, num_generations: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        probe.generate(inputs, num_generations, **kwargs)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert probe._calls == []


def test_misspelled_kwarg_gets_did_you_mean(probe: ProbeModel) -> None:
    with pytest.raises(InvalidInputError, match=r"Did you mean 'tag'\?"):
        probe.generate(["x"], tga="label")


def test_typed_kwargs_are_coerced_and_generation_kwargs_merge(probe: ProbeModel) -> None:
    probe.generation_kwargs = {"tag": "from-field", "count": 1}
    out = probe.generate(["x"], count="3")
    assert out[0][0]["tag"] == "from-field"
    assert probe._calls[-1][2] == {"tag": "from-field", "count": 3}


def test_unknown_generation_kwargs_field_is_rejected_at_construction() -> None:
    with pytest.raises(InvalidInputError, match="Unknown generation kwarg 'colour'"):
        ProbeModel(generation_kwargs={"colour": "red"})


def test_seed_model_with_var_kwargs_accepts_any_kwarg() -> None:
    assert_contract(SeedAsyncModel().generate(["x"], anything=1), 1, 1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_concurrency", 0, "max_concurrency=0"),
        ("max_retries", -1, "max_retries=-1"),
        ("max_concurrency", None, "max_concurrency=None"),
        ("on_error", "ignore", "on_error='ignore'"),
    ],
)
def test_bad_engine_settings_are_rejected(field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ProbeModel(**{field: value})
    model = ProbeModel()
    with pytest.raises(InvalidInputError, match=message):
        model.set_runtime_parameters({field: value})


def test_generate_inside_a_running_loop() -> None:
    model = SeedAsyncModel()

    async def notebook_cell() -> list[list[dict[str, Any]]]:
        # What Jupyter does: a sync call while the kernel's loop is running.
        return model.generate(["in a loop"], num_generations=2)

    assert_contract(asyncio.run(notebook_cell()), 1, 2)
    assert_contract(model.generate(["after the loop"]), 1, 1)


@pytest.mark.asyncio
async def test_agenerate_outputs_from_the_callers_loop() -> None:
    model = SeedAsyncModel()
    outputs = await model.agenerate_outputs(["a", "b"], num_generations=2)
    assert_contract(outputs, 2, 2)


def test_generate_from_worker_threads() -> None:
    model = ProbeModel(delay=0.01)
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        results[i] = model.generate([f"thread {i}"], num_generations=2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(8))
    for i, out in results.items():
        assert_contract(out, 1, 2)
        assert out[0][0]["images"][0] == model.generate([f"thread {i}"], 2)[0][0]["images"][0]


def test_generate_sets_no_global_event_loop() -> None:
    script = (
        "import asyncio, warnings\n"
        "warnings.simplefilter('error')\n"
        "import sys; sys.path.insert(0, 'tests')\n"
        "from core_backends import SeedAsyncModel\n"
        "SeedAsyncModel().generate(['x'])\n"
        "from asyncio import events\n"
        "print(events._get_running_loop() is None, asyncio.get_event_loop_policy()._local._loop)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "None"]


def test_del_closes_only_the_models_own_loop() -> None:
    model = SeedAsyncModel()
    model.generate(["x"])
    own = model._event_loop
    assert own is not None
    loop = own.loop
    del model
    gc.collect()
    # The finaliser hands the unload to a background thread rather than blocking.
    deadline = time.monotonic() + 5
    while not loop.is_closed() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.is_closed()

    async def caller_loop_survives() -> bool:
        inner = SeedAsyncModel()
        await inner.agenerate_outputs(["y"])
        running = asyncio.get_running_loop()
        del inner
        gc.collect()
        return not running.is_closed()

    assert asyncio.run(caller_loop_survives())


def test_unload_stops_the_loop_and_the_model_can_run_again() -> None:
    model = SeedAsyncModel()
    model.generate(["x"])
    assert model._event_loop is not None
    thread_count = threading.active_count()
    model.unload()
    assert model._event_loop is None
    assert threading.active_count() == thread_count - 1
    assert_contract(model.generate_outputs(["again"]), 1, 1)


def test_unload_cancels_work_still_in_flight() -> None:
    model = ProbeModel(delay=30)
    raised: list[BaseException] = []

    def blocked_caller() -> None:
        try:
            model.generate(["stuck"])
        except BaseException as exc:
            raised.append(exc)

    caller = threading.Thread(target=blocked_caller, daemon=True)
    caller.start()
    while not model._calls:
        time.sleep(0.01)
    model.unload()
    caller.join(timeout=5)
    # Without the cancellation the caller would wait forever on a stopped loop.
    assert not caller.is_alive()
    assert [type(exc) for exc in raised] == [concurrent.futures.CancelledError]
