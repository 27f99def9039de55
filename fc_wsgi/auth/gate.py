"""AuthGate: who may call the trigger (fc-spec.md sections 6, 7, 8, 9).

``anonymous`` lets every request through; ``function`` checks FC's signatures
(:mod:`fc_wsgi.auth.signature`), ``jwt`` verifies a JWT against the trigger's JWKS
(:mod:`fc_wsgi.auth.jwt`). The checker is built once, here; per request the gate only calls
it. A CORS preflight never reaches the check, because browsers send no credentials with it
(DESIGN.md's request flow). With ``disable_url_internet`` every request is refused the way
FC's disabled public URL refuses it. Refusals are FC's answers from :mod:`fc_wsgi.errors`;
they never carry a secret, a signature or a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..common import MAX_SKEW_SECONDS, SDK_VARIANTS, SIGNATURE_SCHEMES
from ..errors import AccessDenied, FcError, error_response

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from ..common import AuthType, Clock, Profile
    from ..config import AccessKey
    from ..jwt_config import JwtAuthConfig
    from .jwks import FetchJwks

#: FC's message for a trigger whose public URL is disabled (fc-spec.md section 6).
URL_DISABLED_MESSAGE = "access denied due to function internet URL is disable"


class AuthGate:
    """Authenticate each request as the trigger's ``authType`` says, before the app runs."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        auth_type: AuthType = "anonymous",
        auth_config: Mapping[str, Any] | str | JwtAuthConfig | None = None,
        access_keys: Iterable[AccessKey] = (),
        profile: Profile = "fc3",
        disable_url_internet: bool = False,
        signature_schemes: Iterable[str] = SIGNATURE_SCHEMES,
        max_skew_seconds: int = MAX_SKEW_SECONDS,
        sdk_variants: bool = SDK_VARIANTS,
        fetch_jwks: FetchJwks | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.app = app
        self.auth_type = auth_type
        self.profile = profile
        self.disable_url_internet = disable_url_internet
        self._check: Callable[[WSGIEnvironment], object] | None
        if auth_type == "anonymous":
            self._check = None
        elif auth_type == "function":
            from .signature import SignatureVerifier

            self._check = SignatureVerifier(
                tuple(access_keys),
                schemes=signature_schemes,
                max_skew_seconds=max_skew_seconds,
                clock=clock,
                sdk_variants=sdk_variants,
            ).verify
        elif auth_type == "jwt":
            from ..jwt_config import JwtAuthConfig, parse_auth_config
            from .jwt import JwtVerifier

            if auth_config is None:
                raise ValueError("auth_type 'jwt' needs auth_config (FC's authConfig)")
            if not isinstance(auth_config, JwtAuthConfig):
                auth_config = parse_auth_config(auth_config)
            verifier = JwtVerifier(auth_config, fetch_jwks=fetch_jwks, clock=clock)
            self._check = verifier.authenticate
        else:
            raise ValueError(f"auth_type must be anonymous, function or jwt, got {auth_type!r}")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.disable_url_internet:
            error = AccessDenied(URL_DISABLED_MESSAGE)
            metrics.count_auth_refusal(error.code, environ)
            return error_response(error, environ, start_response, self.profile)
        check = self._check
        if check is not None and not _is_preflight(environ):
            try:
                check(environ)
            except FcError as error:
                metrics.count_auth_refusal(error.code, environ)
                return error_response(error, environ, start_response, self.profile)
        return self.app(environ, start_response)


def _is_preflight(environ: WSGIEnvironment) -> bool:
    """A CORS preflight: browsers send no credentials with one (DESIGN.md, "Request flow")."""
    return (
        environ["REQUEST_METHOD"] == "OPTIONS"
        and "HTTP_ORIGIN" in environ
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
    )
