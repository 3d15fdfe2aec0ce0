// Test plugin: handlers that misbehave on purpose (loop, allocate, throw)
// and call every capability, plus js-hello's handlers, so the tests
// compile one JavaScript component instead of two (each holds an engine).
import "../js-hello/hello.js";
import { HostError, Permanent, Retryable, chain, config, db, handler, http, jobs, log } from "../sdk-js/taskhost.js";
export { handlers, run } from "../sdk-js/taskhost.js";

handler("js-probe.outcome", (job, p) => {
  switch (p.kind) {
    case "ok":
      return { attempt: job.attempt };
    case "retry":
      throw new Retryable(`attempt ${job.attempt} asked for a retry`);
    case "retry-after":
      throw new Retryable("come back later", { retryAfterMs: p.retry_after_ms });
    default:
      throw new Permanent(`permanent failure on attempt ${job.attempt}`);
  }
});

function ratio(p) {
  return p.missing.field;
}

handler("js-probe.boom", (job, p) => {
  log.info("about to read a missing field");
  return { ratio: ratio(p) };
});

handler("js-probe.spin", () => {
  let n = 0;
  for (;;) n++;
});

handler("js-probe.grow", (job, p) => {
  const held = [];
  for (let i = 0; i < p.mib; i++) held.push(new Uint8Array(1 << 20).fill(1));
  return held.reduce((n, b) => n + b.length, 0);
});

function show(f) {
  try {
    return { ok: f() };
  } catch (e) {
    if (e instanceof HostError) return { err: `${e.kind}: ${e.detail}` };
    throw e;
  }
}

handler("js-probe.capabilities", (job, p) => ({
  db: show(() => `${db.query("app", "SELECT 1").rows.length} rows`),
  http: show(() => String(http.get(p.url ?? "http://127.0.0.1:9/").status)),
  chain: show(() => String(chain.blockNumber("local"))),
  config: show(() => config.get("token")),
  jobs: show(() => jobs.enqueue("js.hello", { name: "fan" })),
  batch: show(() => jobs.startBatch("js.hello", [{ name: "a" }, { name: "b" }], { onComplete: "js.hello" })),
  job_chain: show(() =>
    jobs.startChain([
      ["js.hello", { name: "one" }],
      ["js.hello", { name: "two" }],
    ]),
  ),
}));
