"""An async model's life after its last use: dropped or left at exit, it never hangs or speaks."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
from typing import Any

from pydantic import PrivateAttr

from core_backends import SeedAsyncModel

EXIT_SCRIPTS = {
    "the issue's reproduction": (
        "import imgen\nm = imgen.get_model('fake-async:x')\nm.generate_outputs(['a'])\n"
    ),
    "a model kept alive by another module": (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from core_backends import SeedAsyncModel\n"
        "model = SeedAsyncModel(); model.generate(['x'])\n"
        "sys.modules['__main__'].keep = model\n"
    ),
    "a model in a reference cycle": (
        "import imgen\n"
        "m = imgen.get_model('fake-async:x', latency=0.01)\n"
        "m.generate_outputs(['a', 'b'], num_generations=2)\n"
        "cycle = [m]; cycle.append(cycle)\n"
        "del m, cycle\n"
    ),
}


def exit_seconds(script: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `script`; return how long the process took to exit after its last line ran."""
    # CLOCK_MONOTONIC is one clock for the whole machine: the child's reading and ours compare.
    timed = script + "import time as _t; print(_t.monotonic(), flush=True)\n"
    result = subprocess.run(
        [sys.executable, "-c", timed], capture_output=True, text=True, timeout=60
    )
    exited = time.monotonic()
    last_line = float(result.stdout.split()[-1])
    return exited - last_line, result


def test_exit_without_unload_is_quick_and_quiet() -> None:
    for name, script in EXIT_SCRIPTS.items():
        seconds, result = exit_seconds(script)
        assert result.returncode == 0, name
        assert result.stderr == "", name
        # Shutting down used to wait 5 s on the loop thread that exit had frozen.
        assert seconds < 1.5, f"{name}: exit took {seconds:.2f}s"


# Long enough that a finaliser waiting for the unload shows, however loaded the machine.
UNLOAD_SECONDS = 2.0


class SlowToUnload(SeedAsyncModel):
    """Takes its time to unload, and records where it did."""

    _unloaded_on: list[str] = PrivateAttr(default_factory=list)

    def unload(self) -> None:
        time.sleep(UNLOAD_SECONDS)
        self._unloaded_on.append(threading.current_thread().name)
        super().unload()


def test_dropping_a_model_never_blocks_and_unloads_it_in_the_background() -> None:
    model = SlowToUnload()
    model.generate(["x"])
    assert model._event_loop is not None
    loop = model._event_loop.loop
    record = model._unloaded_on

    start = time.monotonic()
    del model
    gc.collect()
    # The finaliser did not wait for the unload.
    assert time.monotonic() - start < UNLOAD_SECONDS / 2

    deadline = time.monotonic() + 10
    while not loop.is_closed() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.is_closed()
    # The backend's own unload ran (closing its clients), off the thread that dropped it.
    assert record == ["imgen-release"]


def test_a_model_collected_on_its_own_loop_is_released() -> None:
    holder: dict[str, Any] = {"model": SlowToUnload()}
    model = holder["model"]
    model.generate(["x"])
    loop = model._event_loop.loop
    record = model._unloaded_on
    del model

    async def drop_here() -> None:
        # The last reference goes away on the model's own loop thread, where a blocking
        # finaliser would deadlock.
        holder.clear()
        gc.collect()

    done = asyncio.run_coroutine_threadsafe(drop_here(), loop)
    done.result(timeout=5)
    deadline = time.monotonic() + 10
    while not loop.is_closed() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.is_closed()
    assert record == ["imgen-release"]
