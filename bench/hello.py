"""A bare Flask "hello JSON" app: the yardstick the eligibility figures are divided by."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.post("/hello")
def hello():  # type: ignore[no-untyped-def]
    return jsonify({"allowed": True})
