"""DramatiqBackend and its task records against a real redis-server, in-process.

The web side (enqueue: record, then message), the worker side's claim/finish (FC's states),
the operator's read side (get, list_tasks, retry) and the broker settings carried by
``async.brokerUrl``. The end-to-end behaviour with real processes is in test_dramatiq_e2e.py.
"""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("dramatiq", reason="the dramatiq extra is not installed")

import redis  # noqa: E402
from support import (  # noqa: E402
    check_listing_filters_and_pages,
    check_stop_in_each_state,
    free_port,
    make_environ,
)

from fc_wsgi.common import redact_url  # noqa: E402
from fc_wsgi.config import ConfigError, load_config  # noqa: E402
from fc_wsgi.dispatch import AsyncDispatcher  # noqa: E402
from fc_wsgi.dispatch.backend import (  # noqa: E402
    TaskBackend,
    TaskStore,
    open_backend,
)
from fc_wsgi.dispatch.dramatiq_backend import (  # noqa: E402
    QUEUE_NAME,
    BrokerSettings,
    DramatiqBackend,
)
from fc_wsgi.dispatch.tasks import (  # noqa: E402
    DuplicateTask,
    QueueFull,
    StoreBusy,
    StoredRequest,
    TaskBusy,
    TaskNotFound,
)

NOW = 1_800_000_000.0
REQUEST = StoredRequest(
    environ={"REQUEST_METHOD": "POST", "PATH_INFO": "/job", "QUERY_STRING": "a=1"},
    body=b"\x00binary body\xff",
)


@pytest.fixture
def backend(redis_url: str):
    url = f"{redis_url}?namespace=u{uuid.uuid4().hex[:10]}"
    with DramatiqBackend(url, max_async_event_age_in_seconds=60, retention_seconds=30) as made:
        yield made


def queued(backend: DramatiqBackend, queue: str = QUEUE_NAME) -> list[bytes]:
    """Message ids waiting in a Dramatiq queue (``.DQ``: the delay queue)."""
    key = f"{backend.settings.namespace}:{queue}"
    return backend.broker.client.lrange(key, 0, -1)


def test_it_is_the_interface_the_dispatcher_and_cli_use(backend):
    assert isinstance(backend, TaskBackend) and isinstance(backend, TaskStore)
    assert backend.runs_locally is False


def test_enqueue_writes_the_record_then_the_message(backend):
    backend.enqueue("t1", "rid-1", REQUEST, due=NOW, now=NOW)
    task = backend.get("rid-1")
    assert (task.id, task.request_id, task.state, task.attempts) == ("t1", "rid-1", "Enqueued", 0)
    assert (task.method, task.path, task.created, task.due) == ("POST", "/job", NOW, NOW)
    assert task.request == REQUEST  # bytes survive as bytes
    assert len(queued(backend)) == 1 and queued(backend, QUEUE_NAME + ".DQ") == []


def test_a_delay_goes_through_dramatiqs_delay_queue(backend):
    backend.enqueue("t1", "t1", REQUEST, due=NOW + 30, now=NOW)
    assert queued(backend) == [] and len(queued(backend, QUEUE_NAME + ".DQ")) == 1
    assert backend.get("t1").due == NOW + 30


def test_a_reused_task_id_is_refused_and_the_first_kept(backend):
    backend.enqueue("t1", "rid-1", REQUEST, due=NOW, now=NOW)
    with pytest.raises(DuplicateTask):
        backend.enqueue("t1", "rid-2", REQUEST, due=NOW, now=NOW)
    assert backend.get("t1").request_id == "rid-1" and len(queued(backend)) == 1


def test_max_pending_refuses_the_next_task(backend):
    for i in range(3):
        backend.enqueue(f"t{i}", f"t{i}", REQUEST, due=NOW, now=NOW, max_pending=3)
    with pytest.raises(QueueFull):
        backend.enqueue("t3", "t3", REQUEST, due=NOW, now=NOW, max_pending=3)
    assert backend.get("t3") is None and len(queued(backend)) == 3


def test_claim_and_finish_follow_the_journals_states(backend):
    store = backend.store
    backend.enqueue("t1", "t1", REQUEST, due=NOW, now=NOW)
    token = _token(backend, "t1")
    task = store.claim("t1", token, "w1", now=NOW + 1, max_age_seconds=60, max_attempts=4)
    assert (task.state, task.attempts, task.lease_owner) == ("Running", 1, "w1")
    assert task.started == NOW + 1
    assert store.finish("t1", "someone-else", state="Succeeded", now=NOW + 2) is None
    assert store.finish("t1", "w1", state="Retrying", now=NOW + 2, error="boom", due=NOW + 3) == (
        "Retrying"
    )
    retrying = backend.get("t1")
    assert (retrying.state, retrying.last_error, retrying.due, retrying.ended) == (
        "Retrying", "boom", NOW + 3, None,
    )  # fmt: skip
    task = store.claim("t1", token, "w2", now=NOW + 3, max_age_seconds=60, max_attempts=4)
    assert task.attempts == 2
    assert store.finish("t1", "w2", state="Succeeded", now=NOW + 4, status=200) == "Succeeded"
    done = backend.get("t1")
    assert (done.state, done.status, done.ended) == ("Succeeded", 200, NOW + 4)
    assert done.lease_owner is None
    # A late duplicate delivery of the message runs nothing.
    assert store.claim("t1", token, "w3", now=NOW + 5, max_age_seconds=60, max_attempts=4) is None


def test_a_running_task_claimed_again_lost_its_worker(backend):
    """Dramatiq redelivers a Running task's message only when its worker died."""
    store = backend.store
    backend.enqueue("t1", "t1", REQUEST, due=NOW, now=NOW)
    token = _token(backend, "t1")
    store.claim("t1", token, "w1", now=NOW, max_age_seconds=60, max_attempts=2)
    again = store.claim("t1", token, "w2", now=NOW + 1, max_age_seconds=60, max_attempts=2)
    assert (again.state, again.attempts, again.lease_owner) == ("Running", 2, "w2")
    # Its worker died twice: max_attempts runs were started, so it fails instead of looping.
    last = store.claim("t1", token, "w3", now=NOW + 2, max_age_seconds=60, max_attempts=2)
    assert (last.state, last.attempts) == ("Failed", 2) and "w2" in last.last_error


def test_an_old_task_expires_when_claimed(backend):
    backend.enqueue("t1", "t1", REQUEST, due=NOW, now=NOW)
    task = backend.store.claim(
        "t1", _token(backend, "t1"), "w1", now=NOW + 60, max_age_seconds=60, max_attempts=4
    )
    assert (task.state, task.attempts, task.ended) == ("Expired", 0, NOW + 60)


def test_retry_resets_the_task_and_sends_a_new_message(backend):
    store = backend.store
    backend.enqueue("t1", "rid-1", REQUEST, due=NOW, now=NOW)
    old = _token(backend, "t1")
    store.claim("t1", old, "w1", now=NOW, max_age_seconds=60, max_attempts=1)
    with pytest.raises(TaskBusy):
        backend.retry("rid-1", now=NOW + 1)
    store.finish("t1", "w1", state="Failed", now=NOW + 1, error="boom")
    record = backend.retry("rid-1", now=NOW + 2)
    assert (record.state, record.attempts, record.enqueued, record.last_error) == (
        "Enqueued", 0, NOW + 2, None,
    )  # fmt: skip
    assert len(queued(backend)) == 2
    # The first message (old token) is stale now; the new one runs.
    assert store.claim("t1", old, "w2", now=NOW + 2, max_age_seconds=60, max_attempts=4) is None
    new = store.claim("t1", _token(backend, "t1"), "w2", now=NOW + 2, max_age_seconds=60,
                      max_attempts=4)  # fmt: skip
    assert new.attempts == 1
    with pytest.raises(TaskNotFound):
        backend.retry("nope")


def test_list_tasks_newest_first_and_filtered(backend):
    for i in range(5):
        backend.enqueue(f"t{i}", f"t{i}", REQUEST, due=NOW + i, now=NOW + i)
    backend.store.claim("t2", _token(backend, "t2"), "w", now=NOW, max_age_seconds=60,
                        max_attempts=1)  # fmt: skip
    assert [t.id for t in backend.list_tasks(limit=3)] == ["t4", "t3", "t2"]
    assert [t.id for t in backend.list_tasks(state="Running")] == ["t2"]
    assert all(t.request is None for t in backend.list_tasks())


def test_records_expire_after_the_retention_time(backend):
    store = backend.store
    backend.enqueue("t1", "rid-1", REQUEST, due=NOW, now=NOW)
    client, key = backend.broker.client, f"{backend.settings.namespace}:fc-wsgi:task:t1"
    assert 60 + 30 <= client.ttl(key) <= 60 + 30 + 60  # waiting: age limit + retention
    store.claim("t1", _token(backend, "t1"), "w", now=NOW, max_age_seconds=60, max_attempts=1)
    store.finish("t1", "w", state="Succeeded", now=NOW)
    assert 0 < client.ttl(key) <= 30  # finished: retentionSeconds
    assert 0 < client.ttl(f"{backend.settings.namespace}:fc-wsgi:rid:rid-1") <= 30
    client.delete(key)  # as if the TTL ran out
    assert backend.get("t1") is None and backend.list_tasks() == []


def test_the_dispatcher_stores_in_redis_and_runs_nothing_itself(backend, recorder):
    def app(environ, start_response):  # pragma: no cover - must not run here
        raise AssertionError("the serving process ran a task")

    dispatcher = AsyncDispatcher(app, journal=backend)
    dispatcher.start()  # as gunicorn's post_worker_init does: nothing to start
    environ = make_environ(REQUEST_METHOD="POST", body=b"hi", HTTP_X_FC_INVOCATION_TYPE="Async",
                           HTTP_X_FC_ASYNC_DELAY="5")  # fmt: skip
    assert b"".join(dispatcher(environ, recorder.start_response)) == b""
    assert recorder.status == "202 Accepted"
    rid = dict(recorder.headers)["X-Fc-Request-Id"]
    task = backend.get(rid)
    assert (task.state, task.request.body) == ("Enqueued", b"hi")
    assert task.due == pytest.approx(task.created + 5)
    assert not dispatcher.running and dispatcher.close(timeout=1) is True
    assert backend.get(rid) is not None  # an injected backend stays open: the caller's


def test_redis_down_is_fcs_503_from_the_dispatcher(recorder):
    backend = DramatiqBackend(f"redis://127.0.0.1:{free_port()}/0")
    dispatcher = AsyncDispatcher(lambda e, s: [], journal=backend)
    environ = make_environ(REQUEST_METHOD="POST", HTTP_X_FC_INVOCATION_TYPE="Async")
    body = b"".join(dispatcher(environ, recorder.start_response))
    assert recorder.status.startswith("503") and b"ResourceThrottled" in body
    dispatcher.close(timeout=1)


def test_redis_unreachable_is_busy_and_nothing_is_accepted():
    backend = DramatiqBackend(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreBusy):
        backend.enqueue("t1", "t1", REQUEST, due=NOW, now=NOW)
    with pytest.raises(StoreBusy):
        backend.list_tasks()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", BrokerSettings("redis://h:1/0"), id="defaults"),
        pytest.param(
            "?namespace=ns&heartbeat_timeout=3000&maintenance_chance=500000&dead_message_ttl=9",
            BrokerSettings("redis://h:1/0", "ns", 3000, 500_000, 9),
            id="ours",
        ),
        pytest.param(
            "?socket_timeout=2&namespace=ns",
            BrokerSettings("redis://h:1/0?socket_timeout=2", "ns"),
            id="redis-py's kept",
        ),
    ],
)
def test_broker_settings_ride_on_the_url(query, expected):
    settings = BrokerSettings.from_url("redis://h:1/0" + query)
    assert settings == expected and settings.url == expected.url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://h/0", id="scheme"),
        pytest.param("redis://h/0?heartbeat_timeout=0", id="heartbeat 0"),
        pytest.param("redis://h/0?heartbeat_timeout=soon", id="heartbeat text"),
        pytest.param("redis://h/0?maintenance_chance=1000001", id="chance over a million"),
        pytest.param("redis://h/0?namespace=", id="empty namespace"),
    ],
)
def test_bad_broker_settings_name_the_field(url):
    with pytest.raises(ConfigError, match=r"^async\.brokerUrl: "):
        BrokerSettings.from_url(url)


def test_urls_in_messages_hide_the_password():
    assert redact_url("redis://user:s3cret@h:1/0?password=x") == "redis://user:***@h:1/0"
    assert redact_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_the_config_picks_the_backend(redis_url, tmp_path):
    config = load_config(
        {"methods": ["POST"], "authType": "anonymous",
         "async": {"backend": "dramatiq", "brokerUrl": redis_url}}
    )  # fmt: skip
    with open_backend(config.async_) as made:
        assert isinstance(made, DramatiqBackend)
    sqlite = load_config({"methods": ["POST"], "authType": "anonymous",
                          "async": {"journal": str(tmp_path / "j.sqlite3")}})  # fmt: skip
    with open_backend(sqlite.async_) as journal:
        assert journal.runs_locally is True


def _token(backend: DramatiqBackend, task_id: str) -> str:
    client: redis.Redis = backend.broker.client
    return client.hget(f"{backend.settings.namespace}:fc-wsgi:task:{task_id}", "token").decode()


class _RedisOps:
    def __init__(self, backend: DramatiqBackend) -> None:
        self.store, self._backend = backend, backend

    def add(self, task_id: str, now: float) -> None:
        self._backend.enqueue(task_id, f"rid-{task_id}", REQUEST, due=now, now=now)

    def claim(self, task_id: str, owner: str, now: float):
        token = _token(self._backend, task_id)
        return self._backend.store.claim(
            task_id, token, owner, now=now, max_age_seconds=60, max_attempts=4
        )

    def finish(self, task_id: str, owner: str, state: str, now: float) -> str | None:
        due = now if state == "Retrying" else None
        return self._backend.store.finish(task_id, owner, state=state, now=now, due=due)


def test_stop_in_each_state(backend):
    check_stop_in_each_state(_RedisOps(backend), NOW)


def test_listing_filters_and_keyset_pages(backend):
    check_listing_filters_and_pages(_RedisOps(backend), NOW)


def test_a_task_stopped_while_running_is_neither_retried_nor_delivered(backend):
    """The worker's run ends after a stop: Stopped, no Dramatiq Retry, no destination."""
    from fc_wsgi.dispatch.dramatiq_worker import TaskRunner

    conditions: list[object] = []

    def app(environ, start_response):
        backend.stop("t1", now=NOW + 1)  # the operator stops it mid-run
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"failed"]

    runner = TaskRunner(app, backend.store, max_async_retry_attempts=3, clock=lambda: NOW + 2)
    # _notify(task, condition, outcome): the condition names the destination to deliver to.
    runner._notify = lambda task, condition, outcome: conditions.append(condition)
    backend.enqueue("t1", "t1", REQUEST, due=NOW, now=NOW)
    runner.perform("t1", _token(backend, "t1"))  # returns: no dramatiq Retry raised
    assert backend.get("t1").state == "Stopped"
    assert conditions == [None]


def test_listing_and_counts_in_small_slices_agree(backend, monkeypatch):
    """Redis is walked COUNT_SLICE entries per script; the results do not depend on it."""
    from fc_wsgi.dispatch import dramatiq_backend

    monkeypatch.setattr(dramatiq_backend, "COUNT_SLICE", 3)
    check_listing_filters_and_pages(_RedisOps(backend), NOW)
