"""What every layer shares: FC's constants, the small config types, and URL redaction.

The ground floor of the package, as Dramatiq's ``common.py`` is of its own: it imports nothing
from fc_wsgi, so the config, the errors, the middlewares and the entry points can all stand on
it without tying themselves into a circle. A default that two layers need is written here once
(two copies drift: ``sdk_variants`` once defaulted differently in two classes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

#: FC's two generations: error body keys and request ids differ (fc-spec.md 6, 13.16).
Profile = Literal["fc3", "fc2"]
#: The trigger's ``authType`` (fc-spec.md section 2).
AuthType = Literal["anonymous", "function", "jwt"]
#: ``cors.mode``: FC's defaults, listed origins only, or no CORS headers.
CorsMode = Literal["fc", "strict", "off"]
#: ``async.backend``: where accepted async requests are persisted.
AsyncBackendName = Literal["sqlite", "dramatiq"]
#: ``async.durability`` of the SQLite journal: fsync each accept, or leave it to the OS.
AsyncDurability = Literal["fsync", "process"]
#: A source of time in seconds: ``time.time`` for what is stored or compared across
#: processes, ``time.monotonic`` for intervals inside one process (injected in tests).
Clock = Callable[[], float]

#: Every method an FC HTTP trigger can allow (fc-spec.md section 5).
ALL_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")

#: FC's signature schemes (fc-spec.md 8.1): legacy header, signed URL, ACS3 V3.
SIGNATURE_SCHEMES: tuple[str, ...] = ("fc", "signed-url", "acs3")
#: FC's clock-skew limit for signed requests, in seconds: 15 minutes (fc-spec.md 8.2).
MAX_SKEW_SECONDS = 900
#: Accept the strings real Alibaba SDKs sign where they depart from the documented form
#: (fc-spec.md 13.5: FC accepts what its own SDKs send).
SDK_VARIANTS = True

#: FC's largest request body, sync (fc-spec.md section 3): the bound of any layer that must
#: hold a body whole even when no LimitGuard stands in front, in bytes.
MAX_BODY_BYTES = 32 * 1024 * 1024

#: FC's ``Access-Control-Expose-Headers`` as seen in real answers (fc-spec.md section 10).
FC_EXPOSE_HEADERS: tuple[str, ...] = (
    "Date",
    "x-fc-request-id",
    "x-fc-error-type",
    "x-fc-code-checksum",
    "x-fc-invocation-duration",
    "x-fc-max-memory-usage",
    "x-fc-log-result",
    "x-fc-invocation-code-version",
)


#: Header (or query parameter) names whose values are credentials: never shown, never logged.
SECRET_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-fc-security-token"}
)
#: A name holding one of these parts is a credential too (``x-fc-signature``, ``api-token``).
SECRET_NAME_PARTS = ("token", "secret", "signature", "password", "session", "api-key", "apikey")
#: What is shown in place of a secret value.
MASK = "******"


def is_secret_name(name: str) -> bool:
    """Whether a header or parameter called ``name`` carries a credential (case-insensitive,
    ``_`` read as ``-``, so environ keys such as ``HTTP_X_FC_SECURITY_TOKEN`` work too)."""
    name = name.lower().replace("_", "-")
    return name in SECRET_NAMES or any(part in name for part in SECRET_NAME_PARTS)


def redact_url(url: str) -> str:
    """``url`` for messages and logs: its password and query string (which may carry
    secrets) removed, ``redis://user:***@host:6379/0``."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    elif parts.password:
        netloc = f":***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
