"""fc-wsgi benchmarks: wrk runs under real gunicorn (``python -m benchmarks``) and in-process
per-middleware costs (``python -m benchmarks.micro``); kept out of the test suite because their
numbers depend on the machine."""
