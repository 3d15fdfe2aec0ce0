"""Test plugin: handlers that misbehave on purpose (loop, allocate, raise)
and call every capability, plus py-hello's handlers, so the tests compile
one Python component instead of two (each holds a whole interpreter)."""

import hello  # noqa: F401  (py.hello, from plugins/py-hello)
from taskhost_plugin import (
    HostError,
    Permanent,
    Retryable,
    WitWorld,  # noqa: F401  (componentize-py looks for it here)
    chain,
    config,
    db,
    handler,
    http,
    jobs,
    log,
)


@handler("py-probe.outcome", description="Succeeds or fails as told")
def outcome(job, p: dict):
    kind = p.get("kind")
    if kind == "ok":
        return {"attempt": job.attempt}
    if kind == "retry":
        raise Retryable(f"attempt {job.attempt} asked for a retry")
    if kind == "retry-after":
        raise Retryable("come back later", retry_after_ms=p["retry_after_ms"])
    raise Permanent(f"permanent failure on attempt {job.attempt}")


@handler("py-probe.boom", description="Raises an exception it does not catch")
def boom(job, p: dict):
    log.info("about to divide")
    return {"ratio": _ratio(p.get("n", 1))}


def _ratio(n):
    return n / 0


@handler("py-probe.spin", description="Loops forever")
def spin(job, p: dict):
    n = 0
    while True:
        n += 1


@handler("py-probe.grow", description="Allocates memory a MiB at a time")
def grow(job, p: dict):
    held = []
    for _ in range(p["mib"]):
        held.append(bytearray(1 << 20))
    return sum(len(b) for b in held)


def _show(f):
    try:
        return {"ok": f()}
    except HostError as e:
        return {"err": f"{type(e).__name__}: {e.message}"}


@handler("py-probe.capabilities", description="Calls every host interface")
def capabilities(job, p: dict):
    return {
        "db": _show(lambda: f"{len(db.query('app', 'SELECT 1').rows)} rows"),
        "http": _show(lambda: str(http.get(p.get("url", "http://127.0.0.1:9/")).status)),
        "chain": _show(lambda: str(chain.block_number("local"))),
        "config": _show(lambda: config.get("token")),
        "jobs": _show(lambda: jobs.enqueue("py.hello", {"name": "fan"})),
        "batch": _show(lambda: jobs.start_batch("py.hello", [{"name": "a"}, {"name": "b"}], on_complete="py.hello")),
        "job_chain": _show(lambda: jobs.start_chain([("py.hello", {"name": "one"}), ("py.hello", {"name": "two"})])),
    }
