"""Log lines for the processes fc-wsgi starts: one format, set up once per process.

``fc-wsgi serve`` (in each gunicorn worker) and ``fc-wsgi worker`` (in each child) log like
gunicorn itself, so a deployment reads one kind of line. A process whose root logger already
has a handler (an app that configured logging, a test harness) is left alone.
"""

from __future__ import annotations

import logging

#: Our log lines look like gunicorn's own.
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def configure_logging() -> None:
    """INFO and above to stderr in :data:`LOG_FORMAT`, unless logging is already set up."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
