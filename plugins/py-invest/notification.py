"""Notification retry: the sweep, and one send of one notification through
the Telegram Bot API's ``sendMessage``, its answers mapped as Telegram
documents them. The bot token is a secret the host puts into the URL
path; this plugin never holds it."""

from taskhost_plugin import Denied, HostError, Invalid, Permanent, Retryable, config, handler, http

import rows

NOTIFICATIONS = rows.Kind("notifications", "notification", "notification.retry")


@handler(
    "notification.sweep",
    description="Enqueues one notification.retry job per undelivered notification due for retry",
)
def sweep(job, payload: dict) -> dict:
    return rows.sweep(job, NOTIFICATIONS, int(payload.get("limit", 500)))


@handler("notification.retry", description="Sends one undelivered notification through the Telegram Bot API")
def retry(job, payload: dict) -> dict:
    id = payload.get("id")
    if not isinstance(id, str):
        raise Permanent('payload needs a string "id"')
    row = rows.load(NOTIFICATIONS, id, ["chat_id", "text"])
    if row.status == "delivered":
        return {"id": id, "status": "delivered", "message_id": None}
    if row.status == "undeliverable":
        raise Permanent(f"notification {id} is undeliverable")
    base = config.get("telegram_url").rstrip("/")
    chat_id, text = (str(f) if f is not None else "" for f in row.fields)
    try:
        reply = http.post(
            base + "/bot{secret:telegram_token}/sendMessage",
            json={"chat_id": chat_id, "text": text},
        )
    except (Denied, Invalid):
        raise
    except HostError as e:
        note = f"Telegram unreachable: {e}"
        rows.failed_attempt(NOTIFICATIONS, job, id, row, note)
        raise Retryable(note)
    # Telegram answers {"ok": …, "error_code", "description", "parameters"}.
    try:
        answer = reply.json()
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    description = answer.get("description") or ""
    status = reply.status
    if 200 <= status < 300 and answer.get("ok") is True:
        message_id = (answer.get("result") or {}).get("message_id")
        rows.transition(
            NOTIFICATIONS, job, id, row, "delivered", "sent", [("telegram_message_id", message_id)]
        )
        return {"id": id, "status": "delivered", "message_id": message_id}
    if status == 429:
        after = (answer.get("parameters") or {}).get("retry_after")
        note = f"Telegram rate-limited the send (retry_after {after})"
        rows.failed_attempt(NOTIFICATIONS, job, id, row, note)
        raise Retryable(note, retry_after_ms=None if after is None else int(after) * 1000)
    if status in (400, 403):
        note = f"Telegram refused: {status} {description}"
        rows.transition(NOTIFICATIONS, job, id, row, "undeliverable", note)
        raise Permanent(note)
    if status >= 500:
        note = f"Telegram answered {status} {description}"
        rows.failed_attempt(NOTIFICATIONS, job, id, row, note)
        raise Retryable(note)
    # 401 (a wrong token), 404: no retry fixes the config; a person must.
    note = f"Telegram answered {status} {description}"
    rows.transition(NOTIFICATIONS, job, id, row, "manual_review", note)
    raise Permanent(note)
