"""`import imgen` stays light: no SDK, torch or Pillow until a model needs them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["PIL", "openai", "huggingface_hub", "torch", "diffusers", "importlib_metadata"]
# Parquet datasets: loaded when a job writes one, never by `import imgen` or `imgen.batch`.
PARQUET = ["pyarrow", "fsspec", "s3fs", "ray"]
# The user dir's machinery: only commands that read the settings, keys or logs need it.
USER_DIR = ["sqlite3", "platformdirs"]


def imported_after(code: str, modules: list[str] = HEAVY) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return list(json.loads(result.stdout.splitlines()[-1]))


def test_import_imgen_imports_nothing_heavy() -> None:
    assert imported_after("import imgen") == []


def test_resolving_the_fake_backend_imports_no_sdk() -> None:
    # Discovery needs importlib_metadata; Pillow waits until an image is made.
    assert imported_after("import imgen; imgen.get_model('fake:x')") == ["importlib_metadata"]


def test_import_imgen_and_the_cli_leave_the_user_dir_alone() -> None:
    assert imported_after("import imgen", USER_DIR) == []
    assert imported_after("import imgen.cli", USER_DIR) == []
    # A model without a secret field never looks for a stored key.
    assert imported_after("import imgen; imgen.get_model('fake:x')", USER_DIR) == []


def test_import_imgen_and_its_batch_jobs_leave_pyarrow_and_fsspec_alone() -> None:
    assert imported_after("import imgen", PARQUET) == []
    assert imported_after("import imgen.batch, imgen.batch.command", PARQUET) == []
