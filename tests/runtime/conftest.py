"""A function stack built from a handler and a ``function`` section, validated both sides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import webtest
from support import validated

from fc_wsgi import make_trigger_app


@pytest.fixture
def function_stack(tmp_path) -> Callable[..., webtest.TestApp]:
    """``function_stack(app, profile="fc3", **function_fields)`` → a validated TestApp."""

    def build(app: Callable[..., Any], profile: str = "fc3", **function: Any):
        config = {
            "authType": "anonymous",
            "methods": ["GET", "POST", "HEAD"],
            "profile": profile,
            "async": {"journal": str(tmp_path / "async.sqlite3")},
            "function": {"codeUri": str(tmp_path), **function},
        }
        return validated(lambda inner: make_trigger_app(inner, config), app)

    return build
