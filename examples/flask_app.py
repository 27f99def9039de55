"""A Flask app behind FC's HTTP-trigger behaviour.

Serve it:  fc-wsgi serve examples.flask_app:app --config examples/trigger.json
Or build the stack in code:  app = make_trigger_app(flask_app, "examples/trigger.json")
"""

from flask import Flask, jsonify, request

app = Flask(__name__)
# Let exceptions reach the gateway, which answers FC's 502 UnhandledInvocationError (and logs
# the traceback with the request id) instead of Flask's own HTML 500.
app.config["PROPAGATE_EXCEPTIONS"] = True


@app.get("/")
def index():
    return jsonify(hello="world", requestId=request.environ.get("fc.request_id"))


@app.post("/echo")
def echo():
    return jsonify(received=len(request.get_data()), contentType=request.content_type)


@app.get("/boom")
def boom():
    raise RuntimeError("the function failed on purpose")
