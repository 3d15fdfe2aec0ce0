-- The investment platform's tables its four seed jobs touch: payment and
-- notification retry, deposit monitoring and daily rewards. Portable SQL:
-- runs unchanged on SQLite and PostgreSQL.
--   sqlite3 data/invest.db < schema.sql
--   psql "$DATABASE_URL" -f schema.sql
-- Times are Unix milliseconds (BIGINT), amounts decimal text. Token amounts
-- (deposits, balances, rewards) are whole numbers of the token's smallest
-- unit as decimal text: USDT on BSC has 18 decimals, so 1 USDT is
-- '1000000000000000000', more than a BIGINT holds.

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

-- One row per state change of a payment, notification or chain deposit
-- (entity 'deposit': credited or orphaned, retry_round 0), written in the
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

-- Deposit monitoring ------------------------------------------------------

-- The address each user deposits to (lower-case 0x… hex). A transfer to an
-- address not listed here is not a deposit.
CREATE TABLE IF NOT EXISTS deposit_addresses (
    address TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL
);

-- How far the deposit monitor has read the chain, one row per chain and
-- token (name 'deposits:<chain>:<token>'): block is the last block read
-- that already had the required confirmations; the next run reads from
-- block + 1. It moves in the same transaction as the deposits it found.
CREATE TABLE IF NOT EXISTS chain_cursors (
    name       TEXT PRIMARY KEY,
    block      BIGINT NOT NULL,
    updated_at BIGINT NOT NULL DEFAULT 0
);

-- One row per token Transfer log to a deposit address, id
-- '<tx hash>:<log index>'. status: pending (seen, not yet confirmed) ->
-- credited (added to the balance once, with its audit row) | orphaned (its
-- transaction left the chain in a reorganisation; never credited, back to
-- pending if the transaction is mined again). change_ref names the job run
-- that made the last change, so the statements of one transaction can tell
-- their own change from another run's.
CREATE TABLE IF NOT EXISTS chain_deposits (
    id            TEXT PRIMARY KEY,
    tx_hash       TEXT NOT NULL,
    log_index     BIGINT NOT NULL,
    block_number  BIGINT NOT NULL,
    token         TEXT NOT NULL,
    from_address  TEXT NOT NULL,
    address       TEXT NOT NULL,
    user_id       BIGINT NOT NULL,
    amount        TEXT NOT NULL,
    status        TEXT NOT NULL,
    confirmations BIGINT NOT NULL DEFAULT 0,
    change_ref    TEXT,
    detected_at   BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS chain_deposits_pending ON chain_deposits (status, block_number);

-- A user's balance in the token's smallest unit; deposits are added to it.
CREATE TABLE IF NOT EXISTS balances (
    user_id    BIGINT PRIMARY KEY,
    amount     TEXT NOT NULL DEFAULT '0',
    change_ref TEXT,
    updated_at BIGINT NOT NULL DEFAULT 0
);

-- Daily rewards ---------------------------------------------------------

-- An investment deposit earning a daily reward at its level's rate until
-- its level's cap (level 1: 500% of the amount). earned is the total paid
-- so far; paid_through the last UTC day ('YYYY-MM-DD', '' for none) paid.
-- A deposit earns from the first daily tick after created_at (Unix ms).
-- status: active -> closed (the cap is reached).
CREATE TABLE IF NOT EXISTS deposits (
    id           TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL,
    level        INTEGER NOT NULL,
    amount       TEXT NOT NULL,
    earned       TEXT NOT NULL DEFAULT '0',
    paid_through TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'active',
    created_at   BIGINT NOT NULL DEFAULT 0,
    closed_at    BIGINT
);
CREATE INDEX IF NOT EXISTS deposits_active ON deposits (status, id);

-- One row per deposit and UTC day paid: the ledger of rewards.
CREATE TABLE IF NOT EXISTS rewards (
    deposit_id TEXT NOT NULL,
    day        TEXT NOT NULL,
    amount     TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (deposit_id, day)
);
