-- The Telegram advertising bot's tables its background jobs touch (seed
-- 002). Portable SQL: runs unchanged on SQLite and PostgreSQL, so the bot's
-- web service and taskhost can share one PostgreSQL database.
--   sqlite3 data/bot.db < schema.sql
--   psql "$DATABASE_URL" -f schema.sql
-- Times are Unix milliseconds (BIGINT); TON amounts are integer nanotons
-- (1 TON = 1,000,000,000), never floats.

CREATE TABLE IF NOT EXISTS users (
    id               BIGINT PRIMARY KEY,            -- the Telegram user id
    ton_balance_nano BIGINT NOT NULL DEFAULT 0
);

-- status: pending -> confirmed (a matching transfer was seen) | expired.
-- memo is what the user must put in the transfer's comment: i3lani_<id>.
CREATE TABLE IF NOT EXISTS payments (
    id             BIGINT PRIMARY KEY,
    user_id        BIGINT NOT NULL,
    wallet_address TEXT NOT NULL,                   -- the bot's receiving wallet
    amount_nano    BIGINT NOT NULL,                 -- at least this much must arrive
    memo           TEXT NOT NULL,
    plan_days      INTEGER NOT NULL DEFAULT 30,     -- the subscription it buys
    status         TEXT NOT NULL DEFAULT 'pending',
    created_at     BIGINT NOT NULL DEFAULT 0,
    expires_at     BIGINT NOT NULL,
    checked_at     BIGINT,
    confirmed_at   BIGINT,
    tx_hash        TEXT UNIQUE,                     -- one transfer confirms one payment
    received_nano  BIGINT,
    job_id         TEXT                             -- the taskhost job that settled it
);
CREATE INDEX IF NOT EXISTS payments_pending ON payments (status, expires_at);

-- One row per activated payment: a payment activates a subscription once.
CREATE TABLE IF NOT EXISTS subscriptions (
    payment_id BIGINT PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_user ON subscriptions (user_id, ends_at);

-- id is the app's (the scheduled processor credits those rows) or
-- 'job:<taskhost job id>' for a reward_distribution job's own row.
-- status: pending -> credited; credited_by names the run that credited it.
CREATE TABLE IF NOT EXISTS rewards (
    id          TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL,
    reward_type TEXT NOT NULL,                      -- referral, channel_addition, ...
    amount_nano BIGINT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    created_at  BIGINT NOT NULL DEFAULT 0,
    credited_at BIGINT,
    credited_by TEXT
);
CREATE INDEX IF NOT EXISTS rewards_pending ON rewards (status, created_at);

-- The channels the bot sells posts in; analytics keeps the figures fresh.
CREATE TABLE IF NOT EXISTS channels (
    id                 TEXT PRIMARY KEY,            -- '@i3lani' or '-100…'
    subscribers        BIGINT NOT NULL DEFAULT 0,
    active_subscribers BIGINT NOT NULL DEFAULT 0,
    price_nano         BIGINT NOT NULL DEFAULT 0,   -- per post
    updated_at         BIGINT NOT NULL DEFAULT 0,
    last_error         TEXT
);

-- One row per health check (the job id is its key).
CREATE TABLE IF NOT EXISTS health_checks (
    job_id     TEXT PRIMARY KEY,
    checked_at BIGINT NOT NULL,
    web_ok     INTEGER NOT NULL,
    db_ok      INTEGER NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS health_checks_at ON health_checks (checked_at);
