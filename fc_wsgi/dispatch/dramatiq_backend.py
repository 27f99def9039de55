"""The Dramatiq + Redis async backend: tasks committed to Redis, run by ``fc-wsgi worker``.

FC persists an async request before its 202 and runs it later, with retries and an event-age
limit (fc-spec.md section 11). With ``async.backend: "dramatiq"`` the serving processes only
store: :meth:`DramatiqBackend.enqueue` writes the task's record (FC's states, attempts, the
stored request) and then a Dramatiq message carrying ``(task_id, token)`` through Dramatiq's
Redis broker, delayed by ``x-fc-async-delay`` with Dramatiq's own delay queue. Both are in
Redis before the 202; if either write fails the record is removed again and the client gets
FC's error answer (503 when Redis is unreachable or busy, else 500), never a 202.
``fc-wsgi worker`` (:mod:`fc_wsgi.dispatch.worker`) consumes the messages.

The record is the task's truth, the message only a wake-up call, so ``fc-wsgi tasks`` reads the
same :class:`~fc_wsgi.dispatch.journal.TaskRecord` as with SQLite. Every change of state is one
Lua script, atomic in Redis: a worker *claims* the task (attempts + 1, ``Running``) before it
runs the app, and only the claimer records the result. The ``token`` ties a message to one
enqueue: ``fc-wsgi tasks retry`` writes a new token and sends a new message, and a late
message with an old token is dropped. Records expire ``retentionSeconds`` after they finish
(``maxAsyncEventAgeInSeconds + retentionSeconds`` while still waiting or running).

Durability is Redis's: a 202 means Redis has the task in memory; configure Redis persistence
(``appendonly yes``, ``appendfsync always`` or ``everysec``) for it to survive a Redis restart.

Broker settings ride on ``async.brokerUrl`` as query parameters named after Dramatiq's
``RedisBroker`` arguments and removed before redis-py sees the URL: ``namespace`` (key prefix,
default ``dramatiq``), ``heartbeat_timeout`` (ms without a heartbeat before a worker counts as
dead and its unacknowledged messages are requeued; default 15000 here, Dramatiq's is 60000: see
:mod:`.dramatiq_upkeep`, which beats and checks every third of it), ``maintenance_chance``
(per million broker commands, how often that requeue check also runs by chance, default 1000)
and ``dead_message_ttl`` (ms). Every process sharing the queue must use the same URL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from dramatiq import Message
from dramatiq.brokers.redis import (
    DEFAULT_DEAD_MESSAGE_TTL,
    DEFAULT_MAINTENANCE_CHANCE,
    RedisBroker,
)
from dramatiq.middleware import Middleware
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as RedisRetry

from ..common import redact_url
from ..config import AsyncConfig, ConfigError
from .tasks import (
    ACTIVE_STATES,
    ENQUEUED,
    FAILED,
    FINISHED_STATES,
    RETRYING,
    STATES,
    SUCCEEDED,
    DuplicateTask,
    PageCursor,
    QueueFull,
    StoreBusy,
    StoredRequest,
    StoreError,
    TaskBusy,
    TaskFinished,
    TaskNotFound,
    TaskRecord,
)

log = logging.getLogger(__name__)

#: The Dramatiq queue (and actor) every fc-wsgi task message goes to.
QUEUE_NAME = "fc-wsgi"
ACTOR_NAME = "fc_wsgi_async_task"
#: Key prefix of the task records, under the broker's namespace.
RECORD_PREFIX = "fc-wsgi"
#: Redis connect and read timeouts, in seconds, unless the URL sets its own: a request waiting
#: for its 202 must not hang on an unreachable Redis.
CONNECT_TIMEOUT_SECONDS = 5.0
SOCKET_TIMEOUT_SECONDS = 10.0
#: Without a heartbeat for this long a worker process counts as dead and its unacknowledged
#: messages are requeued, in ms. Dramatiq's 60 s plus its by-chance maintenance left a killed
#: worker's task waiting for minutes; ``fc-wsgi worker`` beats every 5 s (dramatiq_upkeep.py),
#: so 15 s is three missed beats: a live worker is never taken for dead by a late beat.
HEARTBEAT_TIMEOUT_MS = 15_000
#: Extra tries of one Redis command after a connection error (redis-py's own retry).
COMMAND_RETRIES = 2
#: Index entries one counting script reads: bounds how long it holds Redis (about 10 ms).
COUNT_SLICE = 5000

#: The ``TaskRecord`` fields a listing reads (no environ, no body).
_SUMMARY = (
    "id",
    "request_id",
    "state",
    "attempts",
    "created",
    "enqueued",
    "updated",
    "due",
    "started",
    "ended",
    "last_error",
    "status",
    "lease_owner",
    "lease_expiry",
    "method",
    "path",
)
_FLOATS = frozenset({"created", "enqueued", "updated", "due", "started", "ended", "lease_expiry"})
_INTS = frozenset({"attempts", "status"})
_BROKER_PARAMS = ("namespace", "heartbeat_timeout", "maintenance_chance", "dead_message_ttl")


# -- the broker ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BrokerSettings:
    """``async.brokerUrl`` split into the Redis URL and Dramatiq's ``RedisBroker`` options."""

    url: str = dataclasses.field(repr=False)  # may hold a password: never logged
    namespace: str = "dramatiq"
    heartbeat_timeout_ms: int = HEARTBEAT_TIMEOUT_MS
    maintenance_chance: int = DEFAULT_MAINTENANCE_CHANCE
    dead_message_ttl_ms: int = DEFAULT_DEAD_MESSAGE_TTL

    @classmethod
    def from_url(cls, url: str, where: str = "async.brokerUrl") -> BrokerSettings:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"{where}: must be a redis://, rediss:// or unix:// URL")
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in _BROKER_PARAMS:
                ours[name] = value
            else:
                theirs.append((name, value))
        options: dict[str, Any] = {}
        if "namespace" in ours:
            if not ours["namespace"] or ":" in ours["namespace"]:
                raise ConfigError(f"{where}: namespace must be a non-empty name without ':'")
            options["namespace"] = ours["namespace"]
        for name, field, low in (
            ("heartbeat_timeout", "heartbeat_timeout_ms", 1000),
            ("maintenance_chance", "maintenance_chance", 0),
            ("dead_message_ttl", "dead_message_ttl_ms", 1),
        ):
            if name in ours:
                text = ours[name]
                if not text.isdigit() or int(text) < low:
                    raise ConfigError(f"{where}: {name} must be a whole number >= {low}")
                options[field] = int(text)
        if options.get("maintenance_chance", 0) > 1_000_000:
            raise ConfigError(f"{where}: maintenance_chance is per million, at most 1000000")
        clean = urlunsplit(parts._replace(query=urlencode(theirs)))
        return cls(url=clean, **options)


def make_broker(settings: BrokerSettings, *, middleware: Sequence[Middleware] = ()) -> RedisBroker:
    """Dramatiq's Redis broker for ``settings``, with fail-fast timeouts on its client.

    The web side passes no middleware (it only enqueues); the worker passes its configured
    Retries, AgeLimit and TimeLimit.
    """
    pool = redis.ConnectionPool.from_url(
        settings.url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        retry=RedisRetry(ExponentialBackoff(cap=0.5, base=0.05), COMMAND_RETRIES),
    )
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        client=redis.Redis(connection_pool=pool),
        middleware=list(middleware),
        namespace=settings.namespace,
        heartbeat_timeout=settings.heartbeat_timeout_ms,
        maintenance_chance=settings.maintenance_chance,
        dead_message_ttl=settings.dead_message_ttl_ms,
    )
    broker.declare_queue(QUEUE_NAME)
    return broker


def task_message(task_id: str, token: str, *, now: float) -> Message[Any]:
    """The message that wakes a worker for ``task_id``. Its timestamp is the acceptance time,
    so Dramatiq's AgeLimit measures FC's event age from there, across delay and retries."""
    return Message(
        queue_name=QUEUE_NAME,
        actor_name=ACTOR_NAME,
        args=(task_id, token),
        kwargs={},
        options={},
        message_timestamp=int(now * 1000),
    )


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Redis failures as the journal's: unreachable or busy → StoreBusy (FC's 503)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
        raise StoreBusy(f"{what}: Redis unavailable: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"{what}: Redis error: {exc}") from exc


# -- the task records ------------------------------------------------------------------------

# KEYS: record, request-id alias (or ""), index, pending.
# ARGV: task id, now, ttl, max pending (0: none), stale before, field, value, ...
_CREATE = """
if redis.call('exists', KEYS[1]) == 1 then return 'duplicate' end
redis.call('zremrangebyscore', KEYS[3], '-inf', ARGV[5])
redis.call('zremrangebyscore', KEYS[4], '-inf', ARGV[5])
local max_pending = tonumber(ARGV[4])
if max_pending > 0 and redis.call('zcard', KEYS[4]) >= max_pending then return 'full' end
redis.call('hset', KEYS[1], unpack(ARGV, 6))
redis.call('expire', KEYS[1], ARGV[3])
if KEYS[2] ~= '' then redis.call('set', KEYS[2], ARGV[1], 'EX', ARGV[3]) end
redis.call('zadd', KEYS[3], ARGV[2], ARGV[1])
redis.call('zadd', KEYS[4], ARGV[2], ARGV[1])
return 'ok'
"""

# Shared tail: keep the request-id alias as long as the record.
_TOUCH = """
local function touch(key, ttl, prefix)
  redis.call('expire', key, ttl)
  local rid = redis.call('hget', key, 'request_id')
  local id = redis.call('hget', key, 'id')
  if rid and rid ~= id then redis.call('expire', prefix .. 'rid:' .. rid, ttl) end
end
"""

# KEYS: record, pending.  ARGV: task id, token, now, max age (s), max attempts, owner,
# ttl active, ttl finished, key prefix.
_CLAIM = (
    _TOUCH
    + """
local t = redis.call('hmget', KEYS[1], 'state', 'attempts', 'enqueued', 'token', 'lease_owner')
local state = t[1]
if not state then return {'missing'} end
if t[4] ~= ARGV[2] then return {'stale', state} end
local now = ARGV[3]
local final, err
if state == 'Stopping' then
  final, err = 'Stopped', 'stopped while its worker was gone'
elseif state ~= 'Enqueued' and state ~= 'Retrying' and state ~= 'Running' then
  return {'done', state}
elseif tonumber(now) - tonumber(t[3]) >= tonumber(ARGV[4]) then
  final, err = 'Expired', 'older than ' .. ARGV[4] .. ' s; not run'
elseif state == 'Running' and tonumber(t[2]) >= tonumber(ARGV[5]) then
  final, err = 'Failed', 'worker lost (' .. (t[5] or '?') .. ' stopped answering)'
end
redis.call('zrem', KEYS[2], ARGV[1])
if final then
  redis.call('hset', KEYS[1], 'state', final, 'updated', now, 'ended', now, 'last_error', err)
  redis.call('hdel', KEYS[1], 'lease_owner', 'lease_expiry')
  touch(KEYS[1], ARGV[8], ARGV[9])
else
  redis.call('hset', KEYS[1], 'state', 'Running', 'attempts', tonumber(t[2]) + 1,
             'updated', now, 'started', now, 'lease_owner', ARGV[6])
  redis.call('hdel', KEYS[1], 'lease_expiry')
  touch(KEYS[1], ARGV[7], ARGV[9])
end
return {'ok', redis.call('hgetall', KEYS[1])}
"""
)

# KEYS: record, pending.  ARGV: task id, owner, state, now, status, error, due, ttl active,
# ttl finished, key prefix (empty status/error/due: none).
_FINISH = (
    _TOUCH
    + """
local t = redis.call('hmget', KEYS[1], 'state', 'lease_owner')
if (t[1] ~= 'Running' and t[1] ~= 'Stopping') or t[2] ~= ARGV[2] then return false end
local state = ARGV[3]
if t[1] == 'Stopping' then state = 'Stopped' end
redis.call('hset', KEYS[1], 'state', state, 'updated', ARGV[4])
redis.call('hdel', KEYS[1], 'lease_owner', 'lease_expiry')
if ARGV[5] ~= '' then redis.call('hset', KEYS[1], 'status', ARGV[5])
else redis.call('hdel', KEYS[1], 'status') end
if ARGV[6] ~= '' then redis.call('hset', KEYS[1], 'last_error', ARGV[6])
else redis.call('hdel', KEYS[1], 'last_error') end
if state == 'Retrying' then
  redis.call('hset', KEYS[1], 'due', ARGV[7])
  redis.call('zadd', KEYS[2], ARGV[4], ARGV[1])
  touch(KEYS[1], ARGV[8], ARGV[10])
else
  redis.call('hset', KEYS[1], 'ended', ARGV[4])
  touch(KEYS[1], ARGV[9], ARGV[10])
end
return state
"""
)

# KEYS: record, pending.  ARGV: task id, now, token, ttl active, key prefix.
_RESET = (
    _TOUCH
    + """
local state = redis.call('hget', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'Running' or state == 'Stopping' then return state end
redis.call('hset', KEYS[1], 'state', 'Enqueued', 'attempts', 0, 'enqueued', ARGV[2],
           'updated', ARGV[2], 'due', ARGV[2], 'token', ARGV[3])
redis.call('hdel', KEYS[1], 'started', 'ended', 'last_error', 'status')
redis.call('zadd', KEYS[2], ARGV[2], ARGV[1])
touch(KEYS[1], ARGV[4], ARGV[5])
return 'ok'
"""
)

# KEYS: record, pending.  ARGV: task id, now, ttl finished, key prefix.
# Reply: 'ok' when stopped now, else the state that was left alone (or 'missing').
_STOP = (
    _TOUCH
    + """
local state = redis.call('hget', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'Enqueued' or state == 'Retrying' then
  redis.call('hset', KEYS[1], 'state', 'Stopped', 'updated', ARGV[2], 'ended', ARGV[2])
  redis.call('zrem', KEYS[2], ARGV[1])
  touch(KEYS[1], ARGV[3], ARGV[4])
  return 'ok'
end
if state == 'Running' then
  redis.call('hset', KEYS[1], 'state', 'Stopping', 'updated', ARGV[2])
  return 'ok'
end
return state
"""
)

# Listings walk the index (scored by creation time) inside Redis, newest first, at most
# COUNT_SLICE entries per call, so a rare state filter never holds Redis for long.
# KEYS: index.  ARGV: record key prefix, state ('' for any), max score, min score,
# cursor id ('' for none: take the max score whole), limit, scan budget.
# Reply: done (1 or 0), last score scanned, last id scanned, ids found...
_PAGE = """
local want, limit, cursor, top = ARGV[2], tonumber(ARGV[6]), ARGV[5], tonumber(ARGV[3])
local budget = tonumber(ARGV[7])
local found, offset, chunk, last_score, last_id = {}, 0, 512, ARGV[3], cursor
while #found < limit and offset < budget do
  local ids = redis.call('zrevrangebyscore', KEYS[1], ARGV[3], ARGV[4], 'WITHSCORES',
                         'LIMIT', offset, chunk)
  if #ids == 0 then return {1, last_score, last_id, unpack(found)} end
  offset = offset + #ids / 2
  for i = 1, #ids, 2 do
    local id = ids[i]
    if cursor == '' or tonumber(ids[i + 1]) ~= top or id < cursor then
      last_score, last_id = ids[i + 1], id
      local state = redis.call('hget', ARGV[1] .. id, 'state')
      if state and (want == '' or state == want) then
        found[#found + 1] = id
        if #found >= limit then break end
      end
    end
  end
end
return {#found < limit and offset < budget and 1 or 0, last_score, last_id, unpack(found)}
"""

# Counts walk the index a slice per call, so Redis is never held for more than a few ms.
# KEYS: index.  ARGV: record key prefix, first rank, last rank.
# Reply: ids seen, state, count, state, count, ...
_COUNTS = """
local ids = redis.call('zrange', KEYS[1], ARGV[2], ARGV[3])
local totals, flat = {}, {#ids}
for _, id in ipairs(ids) do
  local state = redis.call('hget', ARGV[1] .. id, 'state')
  if state then totals[state] = (totals[state] or 0) + 1 end
end
for state, n in pairs(totals) do flat[#flat + 1] = state; flat[#flat + 1] = n end
return flat
"""


class RedisTaskStore:
    """Task records in Redis: the same states and fields as the SQLite journal's rows."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "dramatiq",
        max_age_seconds: float = 86400,
        retention_seconds: float = 7 * 86400,
    ) -> None:
        # Any: redis-py types every reply as the union of all protocols' shapes.
        self._client: Any = client
        self._prefix = f"{namespace}:{RECORD_PREFIX}:"
        self._index = self._prefix + "tasks"
        self._pending = self._prefix + "pending"
        #: While waiting or running, a record outlives any age at which it could still run.
        self.active_ttl_seconds = max(1, int(max_age_seconds + retention_seconds) + 60)
        #: Once finished, records are kept ``retention_seconds`` (0: deleted at once).
        self.finished_ttl_seconds = int(retention_seconds)
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._reset = client.register_script(_RESET)
        self._stop = client.register_script(_STOP)
        self._page = client.register_script(_PAGE)
        self._counts = client.register_script(_COUNTS)

    def _key(self, task_id: str) -> str:
        return f"{self._prefix}task:{task_id}"

    def _alias(self, request_id: str) -> str:
        return f"{self._prefix}rid:{request_id}"

    def create(
        self,
        task_id: str,
        request_id: str,
        request: StoredRequest,
        *,
        token: str,
        due: float,
        now: float,
        max_pending: int | None,
    ) -> None:
        fields: dict[str, str | bytes] = {
            "id": task_id,
            "request_id": request_id,
            "state": ENQUEUED,
            "attempts": "0",
            "created": repr(now),
            "enqueued": repr(now),
            "updated": repr(now),
            "due": repr(due),
            "method": request.method,
            "path": request.path,
            "environ": json.dumps(dict(request.environ), separators=(",", ":")),
            "body": request.body,
            "token": token,
        }
        alias = self._alias(request_id) if request_id != task_id else ""
        args: list[str | bytes] = [
            task_id,
            repr(now),
            str(self.active_ttl_seconds),
            str(max_pending or 0),
            repr(now - self.active_ttl_seconds),
        ]
        for name, value in fields.items():
            args += [name, value]
        keys = [self._key(task_id), alias, self._index, self._pending]
        result = self._create(keys=keys, args=args)
        if result == b"duplicate":
            raise DuplicateTask(f"task {task_id!r} already exists")
        if result == b"full":
            raise QueueFull(f"{max_pending} tasks are already waiting")

    def discard(self, task_id: str, request_id: str) -> None:
        """Undo :meth:`create` when the message could not be sent."""
        pipe = self._client.pipeline()
        pipe.delete(self._key(task_id))
        if request_id != task_id:
            pipe.delete(self._alias(request_id))
        pipe.zrem(self._index, task_id)
        pipe.zrem(self._pending, task_id)
        pipe.execute()

    def claim(
        self,
        task_id: str,
        token: str,
        owner: str,
        *,
        now: float,
        max_age_seconds: float,
        max_attempts: int,
    ) -> TaskRecord | None:
        """As :meth:`Journal.claim <fc_wsgi.dispatch.journal.Journal.claim>`: a ``Running``
        record (attempts counting this run), or one the claim finished (``Expired``,
        ``Failed`` for a task whose workers died ``max_attempts`` times, ``Stopped``), or
        None when there is nothing to run (unknown or pruned, finished, stale token).

        A message delivered for a ``Running`` task means its worker died (Dramatiq requeues
        a dead worker's unacknowledged messages only): that counts as a new attempt.
        """
        keys = [self._key(task_id), self._pending]
        args = [
            task_id,
            token,
            repr(now),
            repr(float(max_age_seconds)),
            str(max_attempts),
            owner,
            str(self.active_ttl_seconds),
            str(self.finished_ttl_seconds),
            self._prefix,
        ]
        reply = self._claim(keys=keys, args=args)
        if reply[0] != b"ok":
            state = reply[1].decode() if len(reply) > 1 else None
            log.info("async task %s: message not run (%s, %s)", task_id, reply[0].decode(), state)
            return None
        return _decode(_pairs(reply[1]), with_request=True)

    def finish(
        self,
        task_id: str,
        owner: str,
        *,
        state: str,
        now: float,
        status: int | None = None,
        error: str | None = None,
        due: float | None = None,
    ) -> str | None:
        """As :meth:`Journal.finish <fc_wsgi.dispatch.journal.Journal.finish>`."""
        if state not in (SUCCEEDED, FAILED, RETRYING):
            raise ValueError(f"cannot finish a run as {state!r}")
        args = [
            task_id,
            owner,
            state,
            repr(now),
            "" if status is None else str(status),
            error or "",
            "" if due is None else repr(due),
            str(self.active_ttl_seconds),
            str(self.finished_ttl_seconds),
            self._prefix,
        ]
        written = self._finish(keys=[self._key(task_id), self._pending], args=args)
        return None if written is None else written.decode()

    def reset(self, task_id: str, *, token: str, now: float) -> TaskRecord:
        """``fc-wsgi tasks retry``: back to ``Enqueued`` with a new token, attempts 0."""
        resolved = self.resolve(task_id)
        if resolved is None:
            raise TaskNotFound(f"no task {task_id!r}")
        args = [resolved, repr(now), token, str(self.active_ttl_seconds), self._prefix]
        result = self._reset(keys=[self._key(resolved), self._pending], args=args).decode()
        if result == "missing":
            raise TaskNotFound(f"no task {task_id!r}")
        if result in ACTIVE_STATES:
            raise TaskBusy(f"task {resolved!r} is {result}; retry it once it has finished")
        record = self.get(resolved)
        if record is None:  # expired in between: vanishingly rare
            raise TaskNotFound(f"no task {task_id!r}")
        return record

    def resolve(self, task_id: str) -> str | None:
        """The task id for a task id or a request id."""
        if self._client.exists(self._key(task_id)):
            return task_id
        aliased = self._client.get(self._alias(task_id))
        return None if aliased is None else bytes(aliased).decode()

    def get(self, task_id: str) -> TaskRecord | None:
        """The task with this id, or else the one with this request id, with its request."""
        fields = self._client.hgetall(self._key(task_id))
        if not fields:
            aliased = self._client.get(self._alias(task_id))
            if aliased is None:
                return None
            fields = self._client.hgetall(self._key(bytes(aliased).decode()))
        return _decode(fields, with_request=True) if fields else None

    def stop(self, task_id: str, *, now: float) -> TaskRecord:
        """As :meth:`Journal.stop <fc_wsgi.dispatch.journal.Journal.stop>`: a waiting task's
        queued message then finds it ``Stopped`` and is dropped; a running one finishes as
        ``Stopped``, without a retry or a destination."""
        resolved = self.resolve(task_id)
        if resolved is None:
            raise TaskNotFound(f"no task {task_id!r}")
        args = [resolved, repr(now), str(self.finished_ttl_seconds), self._prefix]
        state = self._stop(keys=[self._key(resolved), self._pending], args=args).decode()
        if state == "missing":
            raise TaskNotFound(f"no task {task_id!r}")
        if state in FINISHED_STATES:
            raise TaskFinished(f"task {resolved!r} is {state}; only waiting or running"
                               " tasks can be stopped")  # fmt: skip
        record = self.get(resolved)
        if record is None:  # expired in between: vanishingly rare
            raise TaskNotFound(f"no task {task_id!r}")
        return record

    def list_tasks(
        self,
        *,
        limit: int = 100,
        state: str | None = None,
        since: float | None = None,
        after: PageCursor | None = None,
    ) -> list[TaskRecord]:
        """As :meth:`Journal.list_tasks <fc_wsgi.dispatch.journal.Journal.list_tasks>`:
        newest first, without requests, filtered and paged inside Redis."""
        top, cursor = ("+inf", "") if after is None else (repr(after[0]), after[1])
        bottom = "-inf" if since is None else repr(since)
        ids: list[bytes] = []
        while len(ids) < limit:
            args: list[str | int] = [self._prefix + "task:", state or "", top, bottom, cursor,
                                     limit - len(ids), COUNT_SLICE]  # fmt: skip
            done, last_score, last_id, *found = self._page(keys=[self._index], args=args)
            ids.extend(found)
            if done or (last_score.decode(), last_id.decode()) == (top, cursor):
                break
            top, cursor = last_score.decode(), last_id.decode()
        if not ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for raw in ids:
            pipe.hmget(self._key(raw.decode()), _SUMMARY)
        return [
            _decode(dict(zip(_SUMMARY, values, strict=True)), with_request=False)
            for values in pipe.execute()
            if values[0] is not None
        ]

    def counts(self) -> dict[str, int]:
        """Tasks per state still on record (every state, zero included): Lua passes over
        the index, :data:`COUNT_SLICE` records each (a few ms of Redis apiece), about 0.2 s
        per 100,000 records in all; not one atomic snapshot, as a gauge needs none."""
        totals = dict.fromkeys(STATES, 0)
        start = 0
        while True:
            reply = self._counts(
                keys=[self._index], args=[self._prefix + "task:", start, start + COUNT_SLICE - 1]
            )
            for state, count in _pairs(reply[1:]).items():
                name = state.decode()
                totals[name] = totals.get(name, 0) + int(count)
            if reply[0] < COUNT_SLICE:
                return totals
            start += COUNT_SLICE


def _pairs(flat: Sequence[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _decode(fields: Mapping[Any, bytes | None], *, with_request: bool) -> TaskRecord:
    """A record from its hash (bytes keys) or a summary (str keys); absent fields are None."""

    def value(name: str) -> Any:
        raw = fields.get(name)
        if raw is None:
            raw = fields.get(name.encode())
        if raw is None:
            return None
        if name == "body":
            return bytes(raw)
        text = raw.decode()
        if name in _FLOATS:
            return float(text)
        if name in _INTS:
            return int(text)
        return text

    request = None
    if with_request:
        try:
            environ = json.loads(value("environ") or "null")
        except ValueError:
            environ = None
        if isinstance(environ, dict):
            request = StoredRequest(environ=environ, body=value("body") or b"")
    values = {name: value(name) for name in _SUMMARY}
    values["attempts"] = values["attempts"] or 0
    return TaskRecord(**values, request=request)


# -- the web side and the operator's read side ---------------------------------------------


class DramatiqBackend:
    """:class:`~fc_wsgi.dispatch.backend.TaskBackend` on Dramatiq's Redis broker.

    The serving processes enqueue through it; ``fc-wsgi tasks`` reads through it. Tasks run in
    ``fc-wsgi worker``, never here (``runs_locally`` is False).
    """

    #: The dispatcher starts no scheduler: ``fc-wsgi worker`` runs the tasks.
    runs_locally = False

    def __init__(
        self,
        broker_url: str,
        *,
        max_async_event_age_in_seconds: float = 86400,
        retention_seconds: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        broker: RedisBroker | None = None,
    ) -> None:
        self.settings = BrokerSettings.from_url(broker_url)
        # An injected broker (a worker's, with its middleware) belongs to the caller.
        self._owns_broker = broker is None
        self.broker = broker or make_broker(self.settings)
        self.store = RedisTaskStore(
            self.broker.client,
            namespace=self.settings.namespace,
            max_age_seconds=max_async_event_age_in_seconds,
            retention_seconds=retention_seconds,
        )
        self._clock = clock
        self._where = redact_url(broker_url)

    @classmethod
    def from_config(cls, config: AsyncConfig, **kwargs: Any) -> DramatiqBackend:
        return cls(
            config.broker_url,
            max_async_event_age_in_seconds=config.max_async_event_age_in_seconds,
            retention_seconds=config.retention_seconds,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"DramatiqBackend({self._where!r})"

    def __enter__(self) -> DramatiqBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the Redis connections (reopened on next use)."""
        if self._owns_broker:
            self.broker.client.connection_pool.disconnect()

    def enqueue(
        self,
        task_id: str,
        request_id: str,
        request: StoredRequest,
        *,
        due: float,
        now: float | None = None,
        max_pending: int | None = None,
    ) -> None:
        """Write the record, then the (delayed) message; both are in Redis on return."""
        now = self._clock() if now is None else now
        token = uuid.uuid4().hex
        with redis_errors(f"async task {task_id}"):
            self.store.create(
                task_id, request_id, request, token=token, due=due, now=now,
                max_pending=max_pending,
            )  # fmt: skip
        try:
            self._send(task_id, token, due=due, now=now)
        except BaseException:
            try:
                self.store.discard(task_id, request_id)
            except redis.RedisError as exc:  # Redis went away between the two writes
                log.error("async task %s: record left without a message: %s", task_id, exc)
            raise

    def _send(self, task_id: str, token: str, *, due: float, now: float) -> None:
        delay_ms = max(0, round((due - now) * 1000))
        with redis_errors(f"async task {task_id}"):
            self.broker.enqueue(task_message(task_id, token, now=now), delay=delay_ms or None)

    # -- the read side (fc-wsgi tasks) ----------------------------------------------------------

    def get(self, task_id: str) -> TaskRecord | None:
        with redis_errors(self._where):
            return self.store.get(task_id)

    def list_tasks(
        self,
        *,
        limit: int = 100,
        state: str | None = None,
        since: float | None = None,
        after: PageCursor | None = None,
    ) -> list[TaskRecord]:
        with redis_errors(self._where):
            return self.store.list_tasks(limit=limit, state=state, since=since, after=after)

    def counts(self) -> dict[str, int]:
        with redis_errors(self._where):
            return self.store.counts()

    def retry(self, task_id: str, *, now: float | None = None) -> TaskRecord:
        """Run a task again from attempt 1, its age counted afresh, with a new message; a
        message still queued for the old run is dropped when it arrives (its token is old)."""
        now = self._clock() if now is None else now
        token = uuid.uuid4().hex
        with redis_errors(self._where):
            record = self.store.reset(task_id, token=token, now=now)
        self._send(record.id, token, due=now, now=now)
        return record

    def stop(self, task_id: str, *, now: float | None = None) -> TaskRecord:
        with redis_errors(self._where):
            return self.store.stop(task_id, now=self._clock() if now is None else now)


__all__ = [
    "ACTOR_NAME",
    "QUEUE_NAME",
    "BrokerSettings",
    "DramatiqBackend",
    "RedisTaskStore",
    "make_broker",
    "task_message",
]
