"""The notes function: an FC 2.0-style WSGI handler, ``index.handler``.

``/notes/<id>`` answers that note as JSON; ``/notes/`` lists the first ``NOTES_LIMIT``. Its
environment variables (``NOTES_TITLE``, ``NOTES_LIMIT``) are its own: the hello function
never sees them.
"""

import json

NOTES = {
    "1": "Serve a Serverless Devs project",
    "2": "Custom-domain routes and rewrites",
    "3": "FC's default endpoint",
    "4": "Async invocations per function",
}


def handler(environ, start_response):
    note_id = environ["PATH_INFO"].removeprefix("/notes/").strip("/")
    if note_id and note_id not in NOTES:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [json.dumps({"error": f"no note {note_id}"}).encode()]
    limit = int(environ.get("NOTES_LIMIT", "3"))
    notes = {note_id: NOTES[note_id]} if note_id else dict(list(NOTES.items())[:limit])
    payload = {
        "title": environ.get("NOTES_TITLE", ""),
        "notes": notes,
        "request_uri": environ.get("fc.request_uri", ""),
        "greeting": environ.get("GREETING"),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(payload).encode()]
