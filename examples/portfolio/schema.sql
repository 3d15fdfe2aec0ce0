-- The portfolio tracker's tables (seed 003) and the trading platform's
-- (seed 001) that their background jobs touch. Portable SQL: runs
-- unchanged on SQLite and PostgreSQL, so the app and taskhost can share
-- one PostgreSQL database.
--   sqlite3 data/app.db < schema.sql
--   psql "$DATABASE_URL" -f schema.sql
-- Times are Unix milliseconds (BIGINT); wallet amounts are integers in
-- each asset's smallest unit (satoshi, wei, cent), never floats.

-- exchange_key_ref / exchange_secret_ref NAME the plugin secrets that
-- hold the user's exchange API key and signing secret (see README.md);
-- the values themselves are never stored here.
CREATE TABLE IF NOT EXISTS users (
    id                  BIGINT PRIMARY KEY,
    email               TEXT NOT NULL,
    daily_summary       INTEGER NOT NULL DEFAULT 1,
    exchange_key_ref    TEXT,
    exchange_secret_ref TEXT,
    synced_at           BIGINT
);

CREATE TABLE IF NOT EXISTS wallets (
    id      BIGINT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name    TEXT NOT NULL DEFAULT ''
);

-- The history balances are recalculated from: signed amounts.
CREATE TABLE IF NOT EXISTS wallet_transactions (
    id          BIGINT PRIMARY KEY,
    wallet_id   BIGINT NOT NULL,
    asset       TEXT NOT NULL,
    amount      BIGINT NOT NULL,
    executed_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS wallet_transactions_wallet ON wallet_transactions (wallet_id, asset);

CREATE TABLE IF NOT EXISTS wallet_balances (
    wallet_id  BIGINT NOT NULL,
    asset      TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    updated_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (wallet_id, asset)
);

-- period: hourly, daily, weekly, monthly (the schedules) or recalculated.
-- slot is the start of the period the tick falls in (UTC; weeks start on
-- Sunday): one row per wallet, asset, period and slot, whatever reruns.
-- taken_at is the tick's scheduled-for time.
CREATE TABLE IF NOT EXISTS balance_snapshots (
    wallet_id BIGINT NOT NULL,
    asset     TEXT NOT NULL,
    period    TEXT NOT NULL,
    slot      BIGINT NOT NULL,
    taken_at  BIGINT NOT NULL,
    amount    BIGINT NOT NULL,
    PRIMARY KEY (wallet_id, asset, period, slot)
);
CREATE INDEX IF NOT EXISTS balance_snapshots_age ON balance_snapshots (period, taken_at);

-- recalculate_all_wallets: one row per run (its first job's id) with the
-- number of wallets; one row per wallet done. Done when the counts match.
CREATE TABLE IF NOT EXISTS recalculation_runs (
    id         TEXT PRIMARY KEY,
    wallets    BIGINT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_recalculations (
    run_id    TEXT NOT NULL,
    wallet_id BIGINT NOT NULL,
    done_at   BIGINT NOT NULL,
    PRIMARY KEY (run_id, wallet_id)
);

-- What the exchange holds for a user, as of the last sync (its decimal text).
CREATE TABLE IF NOT EXISTS holdings (
    user_id   BIGINT NOT NULL,
    asset     TEXT NOT NULL,
    free      TEXT NOT NULL,
    locked    TEXT NOT NULL,
    synced_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, asset)
);

-- The trading platform's rows cleanup_data ages out.
CREATE TABLE IF NOT EXISTS trades (
    id          BIGINT PRIMARY KEY,
    user_id     BIGINT NOT NULL,
    symbol      TEXT NOT NULL,
    executed_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS trades_at ON trades (executed_at);
CREATE TABLE IF NOT EXISTS logs (
    id         BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    message    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_at ON logs (created_at);
CREATE TABLE IF NOT EXISTS cache (
    cache_key  TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_expiry ON cache (expires_at);

-- The trading bots: url is the bot's control address (GET url/health,
-- POST url/restart). status: running -> unhealthy (after unhealthy_after
-- failed checks in a row; restart_job is its restart) -> running.
CREATE TABLE IF NOT EXISTS bots (
    id           BIGINT PRIMARY KEY,
    name         TEXT NOT NULL,
    url          TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'running',
    failures     INTEGER NOT NULL DEFAULT 0,
    checked_at   BIGINT,
    last_error   TEXT,
    restart_job  TEXT,
    restarted_at BIGINT
);

-- One daily summary mail per user and day (days since 1970-01-01, UTC).
CREATE TABLE IF NOT EXISTS summary_emails (
    user_id    BIGINT NOT NULL,
    day        BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    sent_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);
