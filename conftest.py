"""Fixtures for every test of the repository: core, plugins and examples."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_user_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Give each test an empty user dir of its own, and no default model from the environment.

    Without it, tests would log into the real user dir, and a key or a default model stored
    there would change what they see.
    """
    user_dir = tmp_path_factory.mktemp("user-dir")
    monkeypatch.setenv("IMGEN_USER_DIR", str(user_dir))
    monkeypatch.delenv("IMGEN_MODEL", raising=False)
    return user_dir
