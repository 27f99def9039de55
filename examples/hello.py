"""A function in the style of FC's Python runtime: ``handler(environ, start_response)``.

Serve it with FC's trigger behaviour:  fc-wsgi serve examples.hello:handler
"""

import json


def handler(environ, start_response):
    """Echo what the function sees, as an FC HTTP function would."""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = environ["wsgi.input"].read(int(length))
    elif environ.get("wsgi.input_terminated"):  # a chunked body: read to its end
        body = environ["wsgi.input"].read()
    else:
        body = b""
    if environ.get("PATH_INFO") == "/boom":
        raise RuntimeError("the function failed on purpose")
    answer = {
        "method": environ["REQUEST_METHOD"],
        "path": environ.get("PATH_INFO", "/"),
        "query": environ.get("QUERY_STRING", ""),
        "requestId": environ.get("fc.request_id"),
        "bodyBytes": len(body),
        "fcHeadersSeen": sorted(k for k in environ if k.startswith("HTTP_X_FC_")),
    }
    data = json.dumps(answer).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
