"""AuthGate: who may call the trigger (fc-spec.md sections 6, 7, 8, 9).

``anonymous`` lets every request through; ``function`` and ``jwt`` check FC signatures and
JWTs. A CORS preflight never reaches the check, because browsers send no credentials with it
(DESIGN.md's request flow). With ``disable_url_internet`` every request is refused the way
FC's disabled public URL refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import AccessDenied, error_response

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from ..config import AccessKey, Profile

#: FC's message for a trigger whose public URL is disabled (fc-spec.md section 6).
URL_DISABLED_MESSAGE = "access denied due to function internet URL is disable"


class AuthGate:
    """Authenticate each request as the trigger's ``authType`` says, before the app runs."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        auth_type: str = "anonymous",
        auth_config: Mapping[str, Any] | None = None,
        access_keys: Iterable[AccessKey] = (),
        profile: Profile = "fc3",
        disable_url_internet: bool = False,
    ) -> None:
        if auth_type != "anonymous":
            raise ValueError(f"auth_type {auth_type!r} is not available in this release")
        self.app = app
        self.auth_type = auth_type
        self.profile = profile
        self.disable_url_internet = disable_url_internet

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.disable_url_internet:
            error = AccessDenied(URL_DISABLED_MESSAGE)
            return error_response(error, environ, start_response, self.profile)
        return self.app(environ, start_response)
