/**
 * Sending calls over fetch: the address and token, timeouts, retries with
 * back-off, and turning error answers into the client's errors.
 */

import { InvalidPayload, TaskhostError, Unavailable, fromResponse } from "./errors.js";

export const DEFAULT_URL = "http://127.0.0.1:8080";
/** Answers that mean "not now" rather than "no": retried like a lost answer. */
const RETRY_STATUSES = [502, 503, 504];
/** Node's codes for a connection that was never made: nothing was sent. */
const NEVER_SENT = ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"];

/** Where the host is and how hard to try. */
export interface ClientOptions {
  /** Default `TASKHOST_URL`, then `http://127.0.0.1:8080`. */
  baseUrl?: string;
  /** Default `TASKHOST_TOKEN`; none for an open host. */
  token?: string;
  /** Per request, in ms (a long-poll adds its hold). Default 10 000. */
  timeoutMs?: number;
  /** Further tries of a failed call (so `retries + 1` in all). Default 3. */
  retries?: number;
  /** First wait between tries in ms, doubling, at most 5 s. Default 200. */
  backoffMs?: number;
}

/** One HTTP request. `retrySafe`: sending it twice does what sending it once does. */
export interface Call {
  method: "GET" | "POST" | "DELETE";
  path: string;
  params?: Record<string, string | undefined>;
  body?: unknown;
  retrySafe?: boolean;
  /** How long the host may hold the answer on purpose (long-poll), in ms. */
  holdMs?: number;
}

function env(name: string): string | undefined {
  return typeof process !== "undefined" ? process.env[name] || undefined : undefined;
}

/** `value` as JSON, or `InvalidPayload` naming the first thing JSON cannot carry faithfully; thrown before anything is sent. */
export function encode(what: string, value: unknown): string {
  const walk = (path: string, v: unknown): void => {
    if (v === null || typeof v === "string" || typeof v === "boolean") return;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw notSerialisable(`${what}: ${path} is ${v}, which JSON cannot carry`);
      return;
    }
    if (Array.isArray(v)) return v.forEach((item, i) => walk(`${path}[${i}]`, item));
    if (typeof v === "object") {
      if (typeof (v as { toJSON?: unknown }).toJSON === "function") return;
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw notSerialisable(`${what}: ${path} is a ${proto?.constructor?.name ?? "object"}, which JSON would turn into {}; convert it first`);
      }
      for (const [k, item] of Object.entries(v)) if (item !== undefined) walk(`${path}.${k}`, item);
      return;
    }
    throw notSerialisable(`${what}: ${path} is a ${typeof v}, which is not JSON-serialisable; convert it (for example to a string) first`);
  };
  walk("payload", value);
  return JSON.stringify(value);
}

function notSerialisable(message: string): InvalidPayload {
  return new InvalidPayload("not_serialisable", message);
}

export class Transport {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;

  constructor(options: ClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? env("TASKHOST_URL") ?? DEFAULT_URL).replace(/\/+$/, "");
    this.token = options.token ?? env("TASKHOST_TOKEN");
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 200;
    if (this.retries < 0) throw new RangeError(`retries must not be negative, got ${this.retries}`);
  }

  /** Sends `call`, retrying as allowed; resolves to the decoded answer. */
  async send<T>(call: Call): Promise<T> {
    const url = new URL(this.baseUrl + call.path);
    for (const [k, v] of Object.entries(call.params ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (call.body !== undefined) headers["content-type"] = "application/json";
    const body = call.body === undefined ? undefined : typeof call.body === "string" ? call.body : JSON.stringify(call.body);
    let tries = 0;
    let last = "";
    for (;;) {
      tries += 1;
      let response: Response;
      try {
        response = await fetch(url, {
          method: call.method,
          headers,
          body,
          signal: AbortSignal.timeout(this.timeoutMs + (call.holdMs ?? 0)),
        });
      } catch (e) {
        const code = (e as { cause?: { code?: string } }).cause?.code ?? "";
        last = `${(e as Error).message}${code ? ` (${code})` : ""}`;
        const neverSent = NEVER_SENT.includes(code);
        if ((neverSent || call.retrySafe) && tries <= this.retries) {
          await sleep(this.delay(tries));
          continue;
        }
        throw new Unavailable(this.unavailable(call, tries, last), tries);
      }
      if (RETRY_STATUSES.includes(response.status)) {
        last = `HTTP ${response.status}`;
        if (call.retrySafe && tries <= this.retries) {
          await response.body?.cancel();
          await sleep(this.delay(tries));
          continue;
        }
        throw new Unavailable(this.unavailable(call, tries, last), tries, response.status);
      }
      const text = await response.text();
      let decoded: unknown = undefined;
      try {
        decoded = text ? JSON.parse(text) : undefined;
      } catch {
        decoded = undefined;
      }
      if (response.ok) return decoded as T;
      const error = (decoded as { error?: { code?: string; message?: string } } | undefined)?.error;
      if (error) throw fromResponse(response.status, String(error.code), String(error.message));
      throw fromResponse(response.status, `http_${response.status}`, text.slice(0, 500) || response.statusText);
    }
  }

  private delay(tries: number): number {
    return Math.min(5000, this.backoffMs * 2 ** (tries - 1));
  }

  private unavailable(call: Call, tries: number, last: string): string {
    return `${call.method} ${this.baseUrl}${call.path}: no answer after ${tries} tries (${last})`;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Re-throws anything but a `TaskhostError` of class `cls`, which it returns. */
export function expect<E extends TaskhostError>(e: unknown, cls: new (...args: never[]) => E): E {
  if (e instanceof cls) return e;
  throw e;
}
