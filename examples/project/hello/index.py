"""The hello function: an FC 2.0-style WSGI handler, ``index.handler``.

It reads what FC's Python runtime puts in ``environ``: the function's environment variables
(``GREETING``), the path, and ``fc.request_uri`` (fc-spec-runtime.md 14.2).
"""


def handler(environ, start_response):
    greeting = environ.get("GREETING", "Hello")
    path = environ["PATH_INFO"]
    uri = environ.get("fc.request_uri", "")
    body = f"{greeting} from {path} (fc.request_uri: {uri})\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]
