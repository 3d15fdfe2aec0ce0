/** Typed views of the API's JSON (the schemas of `/api/v1/openapi.json`), with the seed's names for priorities and statuses. */

/** The seed's priority levels; the host has the same four, strictly ordered. */
export const JobPriority = { LOW: 0, NORMAL: 5, HIGH: 8, CRITICAL: 10 } as const;
export type JobPriority = (typeof JobPriority)[keyof typeof JobPriority];
export type PriorityName = "low" | "normal" | "high" | "critical";

/** The API's name for a priority given as `JobPriority.HIGH` or `"high"`. */
export function priorityName(p: JobPriority | PriorityName): PriorityName {
  if (typeof p === "string") {
    if (["low", "normal", "high", "critical"].includes(p)) return p;
  } else {
    for (const [name, value] of Object.entries(JobPriority)) {
      if (value === p) return name.toLowerCase() as PriorityName;
    }
  }
  throw new RangeError(`priority ${JSON.stringify(p)} is not one of low, normal, high, critical (0, 5, 8, 10)`);
}

/** A job's status as the host names it; `SUCCESS` and `FAILED` are the seed's names for `succeeded` and `dead`. */
export const TaskStatus = {
  SCHEDULED: "scheduled",
  PENDING: "pending",
  RUNNING: "running",
  RETRYING: "retrying",
  SUCCEEDED: "succeeded",
  DEAD: "dead",
  CANCELLED: "cancelled",
  SUCCESS: "succeeded",
  FAILED: "dead",
} as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];

const FINAL: readonly TaskStatus[] = ["succeeded", "dead", "cancelled"];

/** Whether a job in this status will not run again by itself. */
export function isFinal(status: TaskStatus): boolean {
  return FINAL.includes(status);
}

/** A job's status with its result or last error; `finished` is false when `waitFor` timed out. */
export interface TaskResult {
  id: string;
  status: TaskStatus;
  result: unknown;
  error: string | null;
  finished: boolean;
}

/** One finished run of a job. */
export interface Attempt {
  attempt: number;
  at: string;
  host: string;
  outcome: string;
  message: string | null;
  duration_ms: number;
  fuel: number | null;
  /** sha256 of the plugin version the run ran on (absent for an expired lease). */
  plugin_digest?: string;
}

/** A whole job with its attempt history (`GET /jobs/{id}`); times are RFC 3339 strings. */
export interface Job {
  id: string;
  queue: string;
  handler: string;
  payload: unknown;
  priority: PriorityName;
  status: TaskStatus;
  attempt: number;
  max_attempts: number;
  run_at: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempts: Attempt[];
  result: unknown;
  idempotency_key: string | null;
  schedule?: string;
  /** The job's own retry policy as the host resolved it; absent when its handler's applies. */
  retry?: ResolvedRetryPolicy;
}

/** A retry policy as the host shows it, spans written as the config writes them (`"1m"`). */
export type ResolvedRetryPolicy =
  | { kind: "delays"; max_attempts: number; delays: string[] }
  | { kind: "exponential"; max_attempts: number; base: string; factor: number; max_delay: string; jitter: number };

/** A job as a list shows it (`GET /jobs`): no payload or result. */
export interface JobSummary {
  id: string;
  queue: string;
  handler: string;
  priority: PriorityName;
  status: TaskStatus;
  attempt: number;
  run_at: string;
}

/** What `enqueueBatch` did: items sent, newly created, their ids in item order. */
export interface BatchResult {
  total: number;
  enqueued: number;
  ids: string[];
}

/** A batch callback as the host reports it: its fixed job id, and whether it was enqueued. */
export interface BatchCallbackStatus {
  handler: string;
  job: string;
  fired: boolean;
}

/** A batch (`GET /api/v1/batches/{id}`): its jobs' counts and callbacks. */
export interface BatchStatus {
  id: string;
  handler: string;
  total: number;
  enqueued: number;
  pending: number;
  running: number;
  succeeded: number;
  dead: number;
  cancelled: number;
  /** Finished (succeeded, dead, cancelled) of total, 0 to 100. */
  percent: number;
  finished: boolean;
  created_at: string;
  finished_at: string | null;
  on_complete: BatchCallbackStatus | null;
  on_success: BatchCallbackStatus | null;
}

/** A schedule with its next fire time; `schedule` is the cron or interval expression, as in the seed. */
export interface ScheduledJob {
  name: string;
  schedule: string;
  handler: string;
  timezone: string;
  payload: unknown;
  queue: string;
  priority: PriorityName;
  enabled: boolean;
  nextRun: Date | null;
  problem: string | null;
}

/** One queue's numbers (`GET /queues/{name}/stats`). */
export interface QueueStats {
  name: string;
  paused: boolean;
  pending: Record<PriorityName, number>;
  scheduled: number;
  retrying: number;
  running: number;
  succeeded: number;
  dead: number;
  cancelled: number;
  total: number;
  hosts: number;
}

/** A positive span in milliseconds in the host's duration syntax (`7d`, `1h30m`, `250ms`). */
export function formatDuration(ms: number): string {
  let left = Math.round(ms);
  if (!(left > 0)) throw new RangeError(`duration must be positive, got ${ms} ms`);
  let out = "";
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
    ["ms", 1],
  ] as const) {
    const n = Math.floor(left / size);
    left -= n * size;
    if (n) out += `${n}${unit}`;
  }
  return out;
}
