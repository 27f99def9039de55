"""``python -m fc_wsgi`` is the ``fc-wsgi`` command."""

import sys

from .cli import main

sys.exit(main())
