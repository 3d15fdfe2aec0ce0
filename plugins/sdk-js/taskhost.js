// The taskhost plugin SDK for JavaScript (ES modules), on componentize-js.
//
// A plugin's `app.js` registers handlers and re-exports the component's
// two exports:
//
//   import { handler, Permanent } from "taskhost";
//   handler("greet", (job, payload) => {
//     if (!payload.name) throw new Permanent("name must not be empty");
//     return { greeting: `Hello, ${payload.name}!`, attempt: job.attempt };
//   }, { description: "Greets the name in its payload" });
//   export { handlers, run } from "taskhost";
//
// A handler takes the job and the parsed payload and returns any JSON
// value. It fails with `Retryable` (another attempt may help; give
// `{ retryAfterMs }` to ask for a delay) or `Permanent` (straight to the
// dead-letter queue). Any other exception is a bug: its message and stack
// go to the host (`log.report-panic`) and the job ends as a trap carrying
// them, like a panic in a Rust plugin.

import * as wlog from "taskhost:plugin/log@0.1.2";
import * as wdb from "taskhost:plugin/db@0.1.2";
import * as whttp from "taskhost:plugin/http@0.1.2";
import * as wchain from "taskhost:plugin/chain@0.1.2";
import * as wconfig from "taskhost:plugin/config@0.1.2";
import * as wjobs from "taskhost:plugin/jobs@0.1.2";

/** Another attempt may cure this; `retryAfterMs` asks the host to wait. */
export class Retryable extends Error {
  constructor(message, { retryAfterMs } = {}) {
    super(message);
    this.name = "Retryable";
    this.retryAfterMs = retryAfterMs;
  }
}

/** Retrying cannot help: the job goes straight to the dead-letter queue. */
export class Permanent extends Error {
  constructor(message) {
    super(message);
    this.name = "Permanent";
  }
}

/**
 * A host call did not do what was asked. `kind` is `denied`, `invalid`,
 * `failed`, `timeout` or `remote` (then `code` is set). Escaping a
 * handler, `denied` and `invalid` fail the job permanently, the others
 * retryably.
 */
export class HostError extends Error {
  constructor(kind, message, code) {
    super(`${kind}: ${message}`);
    this.name = "HostError";
    this.kind = kind;
    this.detail = message;
    this.code = code;
  }
}

function hostError(e) {
  // componentize-js throws an import's `err` value, wrapped or bare.
  const v = e && e.payload !== undefined ? e.payload : e;
  if (v && typeof v.tag === "string") {
    if (v.tag === "remote") return new HostError("remote", v.val.message, Number(v.val.code));
    return new HostError(v.tag, v.val);
  }
  return e;
}

function call(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    throw hostError(e);
  }
}

const HANDLERS = new Map();

/**
 * Registers `func(job, payload)` as handler `name`. `options` may give a
 * `description` and limits (`maxAttempts`, `fuel`, `timeoutMs`) that may
 * only lower the host's.
 */
export function handler(name, func, options = {}) {
  if (HANDLERS.has(name)) throw new Error(`handler ${name} is declared twice`);
  HANDLERS.set(name, {
    func,
    info: {
      name,
      description: options.description ?? "",
      maxAttempts: options.maxAttempts,
      fuel: options.fuel === undefined ? undefined : BigInt(options.fuel),
      timeoutMs: options.timeoutMs === undefined ? undefined : BigInt(options.timeoutMs),
    },
  });
}

/** The component export `handlers`. */
export function handlers() {
  return [...HANDLERS.values()].map((h) => h.info);
}

function jobError(e) {
  if (e instanceof Retryable) {
    const after = e.retryAfterMs === undefined ? undefined : BigInt(e.retryAfterMs);
    return { tag: "retryable", val: { message: e.message, retryAfterMs: after } };
  }
  if (e instanceof Permanent) return { tag: "permanent", val: e.message };
  if (e instanceof HostError) {
    if (e.kind === "denied" || e.kind === "invalid") return { tag: "permanent", val: e.message };
    return { tag: "retryable", val: { message: e.message, retryAfterMs: undefined } };
  }
  return null;
}

/** The component export `run`. */
export function run(ctx, payload) {
  const entry = HANDLERS.get(ctx.handler);
  if (!entry) throw { tag: "permanent", val: `this plugin has no handler ${ctx.handler}` };
  const job = {
    id: ctx.id,
    handler: ctx.handler,
    queue: ctx.queue,
    attempt: ctx.attempt,
    maxAttempts: ctx.maxAttempts,
    enqueuedAt: Number(ctx.enqueuedAt),
    scheduledFor: Number(ctx.scheduledFor),
  };
  let data;
  try {
    data = JSON.parse(payload);
  } catch (e) {
    throw { tag: "permanent", val: `payload is not JSON: ${e.message}` };
  }
  let result;
  try {
    result = entry.func(job, data);
  } catch (e) {
    const error = jobError(e);
    if (error) throw error;
    // A bug: the host attaches this to the job's trap outcome.
    const what = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e);
    wlog.reportPanic(`uncaught exception in handler ${ctx.handler}: ${what}`);
    throw e;
  }
  const json = JSON.stringify(result === undefined ? null : result);
  return json;
}

function sqlValue(v) {
  if (v === null || v === undefined) return { tag: "null" };
  if (typeof v === "boolean") return { tag: "integer", val: v ? 1n : 0n };
  if (typeof v === "bigint") return { tag: "integer", val: v };
  if (typeof v === "number") {
    return Number.isInteger(v) ? { tag: "integer", val: BigInt(v) } : { tag: "real", val: v };
  }
  if (typeof v === "string") return { tag: "text", val: v };
  if (v instanceof Uint8Array) return { tag: "blob", val: v };
  throw new TypeError(`no SQL value for ${typeof v}`);
}

function jsValue(v) {
  if (v.tag === "null") return null;
  // Integers beyond 2^53 stay exact as BigInt.
  if (v.tag === "integer") return Number.isSafeInteger(Number(v.val)) ? Number(v.val) : v.val;
  return v.val;
}

/** SQL on the databases the config grants; parameters are `$1`, `$2`… */
export const db = {
  query(database, sql, params = []) {
    const r = call(wdb.query, database, sql, params.map(sqlValue));
    const rows = r.rows.map((row) => row.map(jsValue));
    return {
      columns: r.columns,
      rows,
      objects: () => rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]]))),
    };
  },
  /** Returns the number of rows affected. */
  execute(database, sql, params = []) {
    return Number(call(wdb.execute, database, sql, params.map(sqlValue)));
  },
  /** Runs every `[sql, params]` or none; returns rows affected per statement. */
  transaction(database, statements) {
    const list = statements.map(([sql, params = []]) => ({ sql, params: params.map(sqlValue) }));
    return call(wdb.transaction, database, list).map(Number);
  },
};

/** Outbound HTTP to the hosts the config grants; `{secret:NAME}` is filled in by the host. */
export const http = {
  send({ method = "GET", url, headers = [], body, json, timeoutMs } = {}) {
    let h = [...headers];
    let b = body === undefined ? undefined : typeof body === "string" ? new TextEncoder().encode(body) : body;
    if (json !== undefined) {
      b = new TextEncoder().encode(JSON.stringify(json));
      h.push(["content-type", "application/json"]);
    }
    const r = call(whttp.send, {
      method,
      url,
      headers: h,
      body: b,
      timeoutMs: timeoutMs === undefined ? undefined : BigInt(timeoutMs),
    });
    const text = () => new TextDecoder().decode(r.body);
    return { status: r.status, headers: r.headers, body: r.body, text, json: () => JSON.parse(text()) };
  },
  get(url, options = {}) {
    return http.send({ ...options, method: "GET", url });
  },
  post(url, options = {}) {
    return http.send({ ...options, method: "POST", url });
  },
};

/** EVM JSON-RPC on the chains the config grants. Block numbers are Numbers. */
export const chain = {
  rpc: (c, method, params = []) => JSON.parse(call(wchain.rpc, c, method, JSON.stringify(params))),
  blockNumber: (c) => Number(call(wchain.blockNumber, c)),
  getTransaction: (c, hash) => call(wchain.getTransaction, c, hash),
  getReceipt: (c, hash) => call(wchain.getReceipt, c, hash),
  confirmations: (c, hash) => Number(call(wchain.confirmations, c, hash)),
  requiredConfirmations: (c) => Number(call(wchain.requiredConfirmations, c)),
  balance: (c, address) => call(wchain.balance, c, address),
  erc20Transfers: (c, token, to, fromBlock, toBlock) =>
    call(wchain.erc20Transfers, c, token, to, BigInt(fromBlock), BigInt(toBlock)),
};

/** The settings and secrets the config declares for this plugin. */
export const config = {
  get: (key) => call(wconfig.get, key),
};

/** A batch callback as the host takes it: a handler name, or `{ handler, payload }`. */
function batchCallback(cb) {
  if (cb === undefined) return undefined;
  const { handler, payload } = typeof cb === "string" ? { handler: cb, payload: {} } : cb;
  return { handler, payload: JSON.stringify(payload ?? {}) };
}

/**
 * Enqueue further jobs; returns the new job's id. `startBatch` (WIT 0.1.1) starts a batch and returns its id;
 * `startChain` (WIT 0.1.2) a chain of `[handler, payload]` steps, each enqueued once the one before succeeded,
 * with that one's result under `previous`.
 */
export const jobs = {
  startChain(steps) {
    return call(
      wjobs.startChain,
      steps.map(([handler, payload]) => ({ handler, payload: JSON.stringify(payload ?? {}) })),
    );
  },
  startBatch(handlerName, items, { onComplete, onSuccess } = {}) {
    return call(wjobs.startBatch, {
      handler: handlerName,
      items: items.map((item) => JSON.stringify(item)),
      onComplete: batchCallback(onComplete),
      onSuccess: batchCallback(onSuccess),
    });
  },
  enqueue(handlerName, payload, { queue, priority, delayMs, idempotencyKey, maxAttempts } = {}) {
    return call(wjobs.enqueue, {
      handler: handlerName,
      payload: JSON.stringify(payload),
      queue,
      priority,
      delayMs: delayMs === undefined ? undefined : BigInt(delayMs),
      idempotencyKey,
      maxAttempts,
    });
  },
};

/** Lines in the job's captured log. */
export const log = Object.fromEntries(
  ["trace", "debug", "info", "warn", "error"].map((level) => [level, (message) => wlog.log(level, String(message))]),
);
