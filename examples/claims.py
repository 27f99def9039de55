"""A function behind a JWT trigger: shows the claim FC's claimPassBy handed it.

Serve it:  fc-wsgi serve examples.claims:app --config examples/trigger-jwt.json
"""

import json


def app(environ, start_response):
    claims = environ.get("fc.jwt_claims") or {}
    body = json.dumps(
        {"x-uid": environ.get("HTTP_X_UID"), "sub": claims.get("sub"), "path": environ["PATH_INFO"]}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
