"""The state of a notification row: reading it, changing it together with
its audit row, and the sweep's claim of a retry round (the Rust plugin's
`rows` module, line for line in what it writes)."""

from dataclasses import dataclass
from typing import Any, List, Tuple

from taskhost_plugin import HostError, Permanent, db, jobs, log

DB = "invest"

# How long a claimed row may go without a change before a sweep enqueues
# its round again (a sweep that died between claiming and enqueueing).
STALE_CLAIM_MS = 10 * 60 * 1000

AUDIT = (
    "INSERT INTO audit (entity, entity_id, retry_round, attempt, job_id, from_status, to_status, note, at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)


@dataclass(frozen=True)
class Kind:
    """One kind of row the jobs retry: its table, its audit name, its retry handler."""

    table: str
    entity: str
    handler: str


@dataclass
class Row:
    status: str
    round: int
    fields: List[Any]


def job_now(job) -> int:
    """The time this run is for (its due time), so a run reads one clock."""
    return job.scheduled_for


def load(kind: Kind, id: str, columns: List[str]) -> Row:
    """Row ``id`` with its status, round and ``columns``; a missing row is permanent."""
    select = ", ".join(["status", "retry_round", *columns])
    rows = db.query(DB, f"SELECT {select} FROM {kind.table} WHERE id = $1", [id]).rows
    if not rows:
        raise Permanent(f'no {kind.entity} with id "{id}"')
    status, round_, *fields = rows[0]
    return Row(str(status or ""), round_ if isinstance(round_, int) else 0, fields)


def transition(kind: Kind, job, id: str, row: Row, to: str, note: str, sets: List[Tuple[str, Any]] = ()) -> None:
    """Sets the row's status (and ``sets``) and writes its audit row, in one transaction."""
    now = job_now(job)
    params = [to, note, now]
    extra = ""
    for column, value in sets:
        params.append(value)
        extra += f", {column} = ${len(params)}"
    params.append(id)
    update = (
        f"UPDATE {kind.table} SET status = $1, last_error = $2, updated_at = $3{extra} "
        f"WHERE id = ${len(params)}"
    )
    audit = [kind.entity, id, row.round, job.attempt, job.id, row.status, to, note, now]
    db.transaction(DB, [(update, params), (AUDIT, audit)])


def failed_attempt(kind: Kind, job, id: str, row: Row, note: str) -> None:
    """Records a failed attempt; on the last one the row goes to manual review."""
    to = "manual_review" if job.attempt >= job.max_attempts else "retrying"
    transition(kind, job, id, row, to, f"attempt {job.attempt}/{job.max_attempts}: {note}")


def sweep(job, kind: Kind, limit: int) -> dict:
    """Claims each due ``failed`` row (one transaction with its audit row)
    and enqueues one retry job per row and round; re-enqueues stale claims.
    A row that fails is reported and skipped, never fails the sweep."""
    now = job_now(job)
    due = db.query(
        DB,
        f"SELECT id, retry_round, status FROM {kind.table} "
        "WHERE (status = 'failed' AND next_retry_at <= $1) OR (status = 'retrying' AND updated_at <= $2) "
        "ORDER BY next_retry_at, id LIMIT $3",
        [now, now - STALE_CLAIM_MS, limit],
    ).rows
    report = {"due": len(due), "claimed": 0, "enqueued": 0, "errors": []}
    for id, round_, status in due:
        try:
            if status == "failed":
                if not _claim(job, kind, id, round_ + 1):
                    continue
                report["claimed"] += 1
                _enqueue(kind, id, round_ + 1)
            else:
                _enqueue(kind, id, round_)
            report["enqueued"] += 1
        except HostError as e:
            log.warn(f"{kind.entity} {id}: {e}")
            report["errors"].append(f"{id}: {e}")
    return report


def _enqueue(kind: Kind, id: str, round_: int) -> None:
    jobs.enqueue(kind.handler, {"id": id}, idempotency_key=f"{kind.entity}:{id}:round:{round_}")


def _claim(job, kind: Kind, id: str, round_: int) -> bool:
    at = job_now(job)
    claim = (
        f"UPDATE {kind.table} SET status = 'retrying', retry_round = $1, updated_at = $2 "
        "WHERE id = $3 AND status = 'failed' AND retry_round = $4",
        [round_, at, id, round_ - 1],
    )
    audit = (
        "INSERT INTO audit (entity, entity_id, retry_round, attempt, job_id, from_status, to_status, note, at) "
        f"SELECT $1, id, retry_round, 0, $2, 'failed', 'retrying', 'claimed by the sweep', CAST($3 AS BIGINT) FROM {kind.table} "
        "WHERE id = $4 AND status = 'retrying' AND retry_round = $5 AND NOT EXISTS "
        "(SELECT 1 FROM audit WHERE entity = $1 AND entity_id = $4 AND retry_round = $5 AND attempt = 0)",
        [kind.entity, job.id, at, id, round_],
    )
    return db.transaction(DB, [claim, audit])[0] == 1
