"""`imgen batch --engine ray --actors N --gpus-per-actor G`, each run starting its own Ray.

A module of its own: the Ray instance the other Ray tests share would be a cluster that might
grow, where a pool too big for it only draws a warning; here the job starts Ray itself, so a
pool the machine cannot hold is an error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_support import assert_complete, write_lines
from imgen.cli import main

pytestmark = pytest.mark.ray


def test_the_cli_sizes_the_actor_pool_and_refuses_gpus_ray_does_not_have(tmp_path: Path) -> None:
    import ray

    assert not ray.is_initialized()
    prompts = write_lines(tmp_path / "p.txt", "a fox", "a cat", "a dog")
    base = ["batch", "fake", str(prompts), "--engine", "ray"]

    done = CliRunner().invoke(main, [*base, "-o", str(tmp_path / "out"), "--actors", "1"])
    no_gpu = CliRunner().invoke(
        main, [*base, "-o", str(tmp_path / "gpu"), "--actors", "2", "--gpus-per-actor", "1"]
    )

    assert done.exit_code == 0, done.output
    assert_complete(tmp_path / "out", rows=[1, 2, 3], num_generations=1)
    assert no_gpu.exit_code == 2, no_gpu.output
    assert "2 Ray actors of 1 GPU(s) each need 2 GPUs, but the Ray cluster has 0" in no_gpu.output
    assert "lower --actors or --gpus-per-actor" in no_gpu.output
