"""Fixtures for the core tests."""

from __future__ import annotations

import pytest

from core_backends import ProbeModel


@pytest.fixture
def probe() -> ProbeModel:
    return ProbeModel()
