"""Shared fixtures; the helpers themselves live in support.py (importable by name)."""

from __future__ import annotations

import pytest
from support import Recorder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
