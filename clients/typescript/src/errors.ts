/**
 * Errors: one class per kind of refusal, each carrying the API's error code
 * and message, so callers can branch with `instanceof` and show the message.
 */

/** Base of every error this client throws. `status` is the HTTP status when the host answered. */
export class TaskhostError extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly status?: number,
  ) {
    super(`${code}: ${detail}`);
    this.name = new.target.name;
  }
}

/** The request was refused as malformed: a payload JSON cannot carry, a bad cron expression, a batch too large (400/413/415, or client-side `not_serialisable`). */
export class InvalidPayload extends TaskhostError {
  /** For a batch refused midway: what earlier chunks enqueued. */
  partial?: { total: number; enqueued: number; ids: string[] };
}
/** No loaded plugin provides the handler (404 `unknown_handler`). */
export class UnknownHandler extends TaskhostError {}
/** No token, or one the host does not know (401). */
export class Unauthorized extends TaskhostError {}
/** The token lacks the scope the call needs (403). */
export class Forbidden extends TaskhostError {}
/** No such job, schedule or queue (404). */
export class NotFound extends TaskhostError {}
/** The target's state refuses the call, e.g. cancelling a job that already runs (409). */
export class Conflict extends TaskhostError {}
/** The host failed while answering (500, 507). */
export class ServerError extends TaskhostError {}

/** The host could not be reached (or answered 502/503/504) after the configured retries. */
export class Unavailable extends TaskhostError {
  constructor(
    detail: string,
    readonly attempts: number,
    status?: number,
  ) {
    super("unavailable", detail, status);
  }
}

/** The host has no server side for this call yet (chains, batch callbacks). Nothing was sent or enqueued. */
export class NotSupported extends TaskhostError {
  constructor(
    readonly feature: string,
    readonly hostVersion: string | undefined,
  ) {
    super(
      "not_supported",
      `${feature} is not supported by taskhost host ${hostVersion ?? "of unknown version (it did not answer)"}; nothing was enqueued`,
    );
  }
}

type ErrorClass = new (code: string, detail: string, status?: number) => TaskhostError;

const BY_CODE: Record<string, ErrorClass> = {
  unknown_handler: UnknownHandler,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  not_found: NotFound,
  unknown_queue: NotFound,
  conflict: Conflict,
  config_managed: Conflict,
};

const BY_STATUS: Record<number, ErrorClass> = {
  400: InvalidPayload,
  401: Unauthorized,
  403: Forbidden,
  404: NotFound,
  409: Conflict,
  413: InvalidPayload,
  415: InvalidPayload,
};

/** The error for an error answer of the API. */
export function fromResponse(status: number, code: string, message: string): TaskhostError {
  const cls = BY_CODE[code] ?? BY_STATUS[status] ?? (status >= 500 ? ServerError : TaskhostError);
  return new cls(code, message, status);
}
