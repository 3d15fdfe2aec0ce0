-- The investment platform's tables the payment and notification retry jobs
-- touch. Portable SQL: runs unchanged on SQLite and PostgreSQL.
--   sqlite3 data/invest.db < schema.sql
--   psql "$DATABASE_URL" -f schema.sql
-- Times are Unix milliseconds (BIGINT), amounts decimal text.

-- status: failed (due for retry at next_retry_at) -> retrying (a retry job
-- owns it) -> completed | failed_permanent (the provider refused it) |
-- manual_review (the last attempt failed; a person decides).
CREATE TABLE IF NOT EXISTS payments (
    id            TEXT PRIMARY KEY,
    user_id       BIGINT NOT NULL,
    amount        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    status        TEXT NOT NULL,
    retry_round   INTEGER NOT NULL DEFAULT 0,
    next_retry_at BIGINT NOT NULL DEFAULT 0,
    provider_ref  TEXT,
    last_error    TEXT,
    updated_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS payments_due ON payments (status, next_retry_at);

-- status: failed -> retrying -> delivered | undeliverable (Telegram said
-- 400/403: chat not found, bot blocked) | manual_review.
CREATE TABLE IF NOT EXISTS notifications (
    id                  TEXT PRIMARY KEY,
    chat_id             TEXT NOT NULL,
    text                TEXT NOT NULL,
    status              TEXT NOT NULL,
    retry_round         INTEGER NOT NULL DEFAULT 0,
    next_retry_at       BIGINT NOT NULL DEFAULT 0,
    telegram_message_id BIGINT,
    last_error          TEXT,
    updated_at          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (status, next_retry_at);

-- One row per state change of a payment or notification, written in the
-- same transaction as the change. attempt 0 is the sweep's claim of a
-- retry round; job_id is the taskhost job that made the change.
CREATE TABLE IF NOT EXISTS audit (
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    retry_round INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    job_id      TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    note        TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_entity ON audit (entity, entity_id);
-- A retry round is claimed once, however many sweeps race for it.
CREATE UNIQUE INDEX IF NOT EXISTS audit_claim_once ON audit (entity, entity_id, retry_round) WHERE attempt = 0;
