"""gunicorn options for a function section: threads, timeout, the hooks (fc-spec-runtime 15, 16)."""

from __future__ import annotations

from fc_wsgi import load_config
from fc_wsgi.serve import SPARE_THREADS, gunicorn_options

TRIGGER = {"authType": "anonymous", "methods": ["GET"]}


def test_without_a_function_section_nothing_changes():
    options = gunicorn_options(load_config(TRIGGER), workers=2)
    assert "threads" not in options and "timeout" not in options
    assert "worker_class" not in options  # the sync worker, as before


def test_instance_concurrency_sets_gthread_threads_with_spares():
    function = {"instanceConcurrency": 3, "timeout": 60, "initializationTimeout": 10}
    options = gunicorn_options(load_config({**TRIGGER, "function": function}))
    assert options["threads"] == 3 + SPARE_THREADS  # open question 5: honoured with threads
    assert options["worker_class"] == "gthread"
    assert options["timeout"] > 60 + 10  # gunicorn never kills a worker before the function
    assert callable(options["pre_fork"]) and callable(options["child_exit"])


def test_threads_1_keeps_the_sync_worker():
    options = gunicorn_options(load_config({**TRIGGER, "function": {}}), threads=1)
    assert options["threads"] == 1 and "worker_class" not in options
