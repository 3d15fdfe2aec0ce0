"""The smallest useful Python plugin: greets the name in its payload."""

from taskhost_plugin import Permanent, handler


@handler("py.hello", description="Greets the name in its payload (Python)")
def hello(job, payload: dict) -> dict:
    name = str(payload.get("name", "")).strip()
    if not name:
        raise Permanent("name must not be empty")
    return {"greeting": f"Hello, {name}!", "attempt": job.attempt}
