"""Parquet datasets at fsspec URLs: file://, memory://, and s3:// against a real S3-compatible
server (moto) on 127.0.0.1; clear errors before any generation; secrets kept out of sight."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from click.testing import CliRunner

from batch_support import write_lines
from imgen.batch import run_batch
from imgen.batch.destination import Destination
from imgen.cli import main
from imgen.errors import InvalidInputError
from imgen.testing import FakeImageGeneration
from parquet_support import assert_complete_parquet, assert_images_are_the_fakes, checksums
from s3_support import ACCESS_KEY, SECRET_KEY, free_port, moto_server, s3_environment

ROWS = 7


class NeverLoaded(FakeImageGeneration):
    """A model whose load fails: a job that loads it got past the checks it should fail."""

    def load(self) -> None:
        raise AssertionError("the model was loaded: the destination was not checked first")


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "prompts.txt", *(f"a kite, number {i}" for i in range(ROWS)))


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An s3fs filesystem on the moto server, with a fresh bucket; credentials in the
    environment, as a user would set them."""
    for name, value in s3_environment(endpoint).items():
        monkeypatch.setenv(name, value)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    bucket = f"imgen-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.bucket = bucket
    yield fs


def download(fs: Any, url: str, local: Path) -> Path:
    fs.get(url.removeprefix("s3://").rstrip("/") + "/", str(local), recursive=True)
    return local


def test_a_job_writes_to_s3_and_resumes_there(s3: Any, prompts: Path, tmp_path: Path) -> None:
    url = f"s3://{s3.bucket}/datasets/kites"
    first_rows = write_lines(
        tmp_path / "first.txt", *prompts.read_text().splitlines()[:4]
    )  # a run cut short in shard 1

    first = run_batch(
        FakeImageGeneration(), first_rows, url, format="parquet", shard_rows=3,
        generation_kwargs={"seed": 5},
    )  # fmt: skip
    second = run_batch(FakeImageGeneration(), prompts, url, format="parquet")

    assert first.output_dir == url
    assert (second.rows_skipped, second.rows_done) == (4, 3)
    assert sorted(s3.ls(f"{s3.bucket}/datasets/kites/data")) == [
        f"{s3.bucket}/datasets/kites/data/train-0000{i}.parquet" for i in range(3)
    ]
    local = download(s3, url, tmp_path / "copy")
    records = assert_complete_parquet(local, range(1, ROWS + 1), 1, shard_rows=3)
    assert_images_are_the_fakes(local, records)
    straight = tmp_path / "straight"
    run_batch(
        FakeImageGeneration(), prompts, straight, format="parquet", shard_rows=3,
        generation_kwargs={"seed": 5},
    )  # fmt: skip
    assert checksums(local) == checksums(straight)


def test_datasets_loads_the_shards_straight_from_s3(s3: Any, prompts: Path, endpoint: str) -> None:
    import datasets

    url = f"s3://{s3.bucket}/kites"
    run_batch(FakeImageGeneration(), prompts, url, format="parquet", shard_rows=4)

    loaded = datasets.load_dataset(
        "parquet",
        data_files=f"{url}/data/*.parquet",
        storage_options={"client_kwargs": {"endpoint_url": endpoint}},
        split="train",
    )

    assert len(loaded) == ROWS
    assert loaded[6]["image"].size == (64, 64)
    assert loaded[6]["prompt"] == "a kite, number 6"


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_file_and_memory_urls(scheme: str, prompts: Path, tmp_path: Path) -> None:
    root = tmp_path / "out" if scheme == "file" else f"/imgen-{uuid.uuid4().hex[:8]}/out"
    url = f"{scheme}://{root}"

    summary = run_batch(FakeImageGeneration(), prompts, url, format="parquet", shard_rows=5)

    if scheme == "file":
        assert summary.output_dir == tmp_path / "out"
        local = tmp_path / "out"
    else:
        assert summary.output_dir == url
        local = tmp_path / "copy"
        fsspec.filesystem("memory").get(f"{root}/", str(local), recursive=True)
    assert_complete_parquet(local, range(1, ROWS + 1), 1, shard_rows=5)
    assert run_batch(FakeImageGeneration(), prompts, url, format="parquet").rows_skipped == ROWS


def test_a_missing_filesystem_package_names_the_extra(prompts: Path) -> None:
    # s3fs made unimportable, as where it is not installed: fsspec's own lookup then fails.
    without_s3fs = "import sys; sys.modules['s3fs'] = None; from imgen.cli import main; main()"
    command = ["batch", "fake", str(prompts), "--format", "parquet", "-o", "s3://bucket/x"]

    result = subprocess.run(
        [sys.executable, "-c", without_s3fs, *command], capture_output=True, text=True, check=False
    )

    assert result.returncode == 2, result.stderr
    assert "needs the filesystem's fsspec package: pip install 'imgen[s3]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_scheme_is_named(prompts: Path) -> None:
    with pytest.raises(InvalidInputError, match="Unknown URL scheme 'nope' in 'nope://x/y'"):
        run_batch(NeverLoaded(), prompts, "nope://x/y", format="parquet")


def test_a_missing_bucket_is_refused_before_the_model_loads(s3: Any, prompts: Path) -> None:
    with pytest.raises(InvalidInputError) as refused:
        run_batch(NeverLoaded(), prompts, "s3://no-such-bucket-here/x", format="parquet")

    assert "Cannot write to 's3://no-such-bucket-here/x'" in str(refused.value)
    assert "bucket does not exist" in str(refused.value)


def test_a_denied_bucket_is_refused_before_the_model_loads(
    prompts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with moto_server(deny_all=True) as denied:
        for name, value in s3_environment(denied).items():
            monkeypatch.setenv(name, value)
        with pytest.raises(InvalidInputError) as refused:
            run_batch(NeverLoaded(), prompts, "s3://bucket/x", format="parquet")

    message = str(refused.value)
    assert message.startswith("Cannot write to 's3://bucket/x': PermissionError")
    assert_no_secret(message, *traceback.format_exception(refused.value))


def test_an_unreachable_endpoint_is_refused_before_the_model_loads(prompts: Path) -> None:
    options = {
        "endpoint_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "key": ACCESS_KEY,
        "secret": SECRET_KEY,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    with pytest.raises(InvalidInputError) as refused:
        run_batch(
            NeverLoaded(), prompts, "s3://bucket/x", format="parquet", storage_options=options
        )

    assert "Could not connect to the endpoint URL" in str(refused.value)
    assert_no_secret(str(refused.value), *traceback.format_exception(refused.value))


def test_secrets_stay_out_of_the_dataset_the_summary_and_the_logs(
    s3: Any, endpoint: str, prompts: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"s3://{s3.bucket}/secret-test"
    options = {"key": ACCESS_KEY, "secret": SECRET_KEY, "endpoint_url": endpoint}
    caplog.set_level(logging.DEBUG, logger="imgen")

    summary = run_batch(
        FakeImageGeneration(failure_rate=0.3, failure_seed=1), prompts, url,
        format="parquet", storage_options=options,
    )  # fmt: skip

    assert summary.rows_failed > 0  # errors.jsonl has lines to check
    local = download(s3, url, tmp_path / "copy")
    written = [path.read_bytes().decode("utf-8", "replace") for path in local.rglob("*.json*")]
    destination = Destination(url, options)
    assert_no_secret(
        str(summary), json.dumps(summary.to_dict()), caplog.text, repr(destination), *written
    )
    # Ray actors get the destination pickled: it rebuilds from the location and the options.
    assert pickle.loads(pickle.dumps(destination)).storage_options == options


def test_the_cli_writes_to_s3_with_credentials_from_the_environment(s3: Any, prompts: Path) -> None:
    url = f"s3://{s3.bucket}/cli"
    command = ["batch", "fake", str(prompts), "--format", "parquet", "--shard-rows", "3"]

    result = CliRunner().invoke(main, [*command, "-o", url])

    assert result.exit_code == 0, result.output
    assert f"Dataset: {url}" in result.output
    assert len(s3.ls(f"{s3.bucket}/cli/data")) == 3
    assert_no_secret(result.output)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET_KEY not in text
