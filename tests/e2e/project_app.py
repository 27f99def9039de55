"""A whole project behind one gunicorn: ``FC_WSGI_PROJECT`` names its s.yaml.

Until ``fc-wsgi serve s.yaml`` exists, this is the Router over real trigger stacks with the
handlers loaded by tests/support.py's stand-in for the function runtime.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import project_app

app = project_app(
    os.environ["FC_WSGI_PROJECT"], Path(os.environ["FC_WSGI_JOURNALS"]), env=dict(os.environ)
)
