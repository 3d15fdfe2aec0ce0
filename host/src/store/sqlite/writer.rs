//! The single writer thread and its group commit.
//!
//! Every write goes through one thread that owns the writing connection. It
//! takes all operations waiting in its channel (up to a cap), runs them in
//! one `BEGIN IMMEDIATE` transaction, commits once, and only then answers
//! each caller. Throughput comes from amortising the commit, not from
//! weakening it: every acknowledged operation is committed.
//!
//! Operations share the transaction without per-operation savepoints (they
//! cost a fifth of the throughput, copying every touched page). Instead each
//! operation refuses (lease lost, wrong state, invalid input) *before* it
//! writes anything; the writer checks this with `total_changes` and treats a
//! refusal after a write, or any backend error, as fatal for the batch: it
//! rolls back and every operation in it fails, so nothing half-done commits.
//!
//! While idle the thread also watches `PRAGMA data_version`, which changes
//! only when *another* connection (another process, typically a CLI enqueue)
//! commits, and then ticks the change signal so local workers wake up.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

use super::codec::{micros, time};
use super::integrity::{self, StateRecord};
use super::staleness::{LeaseWatch, NextJudgement};
use crate::clock::Clock;
use crate::store::{StoreConfig, StoreError, StoreResult};

/// What an operation sees while it runs.
pub(super) struct Ctx<'a> {
    /// The store clock's time when this operation started.
    pub now: DateTime<Utc>,
    /// The clock's monotonic reading when this operation started.
    pub mono: Duration,
    /// Store settings (TTLs, retention).
    pub config: &'a StoreConfig,
    /// What this writer knows of leases' renewals.
    pub leases: &'a RefCell<LeaseWatch>,
    wake: Cell<bool>,
    ended: Cell<bool>,
    after_commit: RefCell<Vec<Box<dyn FnOnce()>>>,
}

/// The signals a commit may send, ticked after it.
#[derive(Default)]
pub(super) struct Signals {
    /// Work became available (see [`Ctx::notify`]).
    pub work: watch::Sender<u64>,
    /// A job's run or life ended (see [`Ctx::ended`]).
    pub ends: watch::Sender<u64>,
}

impl Signals {
    fn tick(sender: &watch::Sender<u64>) {
        sender.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Ctx<'_> {
    /// Marks that this operation made work available (enqueue, retry,
    /// release…), so waiting workers are woken after the commit.
    pub fn notify(&self) {
        self.wake.set(true);
    }

    /// Marks that a job's run ended or the job reached a final state
    /// (completed, failed, cancelled, reaped), so whoever waits for a job
    /// is woken after the commit.
    pub fn ended(&self) {
        self.ended.set(true);
    }

    /// Runs `f` once the batch has committed, and never if it rolls back:
    /// logs and metrics about a write must not claim what did not happen.
    pub fn after_commit(&self, f: impl FnOnce() + 'static) {
        self.after_commit.borrow_mut().push(Box::new(f));
    }
}

/// Whether an error is SQLite saying the disk (or the file's size limit)
/// is full.
pub(super) fn is_disk_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// Whether a store error is, underneath, a full disk.
pub(super) fn store_error_is_full(e: &StoreError) -> bool {
    match e {
        StoreError::Full { .. } => true,
        StoreError::Backend(source) => source
            .downcast_ref::<rusqlite::Error>()
            .is_some_and(is_disk_full),
        _ => false,
    }
}

/// How an operation ended, as far as the batch is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    /// Succeeded; its writes belong in the commit.
    Done,
    /// Refused without writing; the batch goes on.
    Refused,
    /// Failed in the backend; the batch must be rolled back.
    Broken,
}

/// A type-erased queued operation.
trait WriteOp: Send {
    /// Runs the operation.
    fn run(&mut self, conn: &Connection, ctx: &Ctx) -> Ran;
    /// Whether it failed because the disk is full.
    fn hit_full_disk(&self) -> bool;
    /// Answers the caller once the commit's fate is known.
    fn finish(self: Box<Self>, commit: StoreResult<()>);
}

struct Pending<T, F> {
    op: Option<F>,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> WriteOp for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection, &Ctx) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection, ctx: &Ctx) -> Ran {
        let result = self.op.take().map(|op| op(conn, ctx));
        let ran = match &result {
            Some(Ok(_)) => Ran::Done,
            Some(Err(StoreError::Backend(_) | StoreError::Full { .. })) | None => Ran::Broken,
            Some(Err(_)) => Ran::Refused,
        };
        self.result = result;
        ran
    }

    fn hit_full_disk(&self) -> bool {
        matches!(&self.result, Some(Err(e)) if store_error_is_full(e))
    }

    fn finish(self: Box<Self>, commit: StoreResult<()>) {
        // The operation's own error says more than the batch's, except a
        // full disk, which the batch's error names for every operation.
        let answer = match (commit, self.result) {
            (Err(e @ StoreError::Full { .. }), _) => Err(e),
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(StoreError::backend("write operation was never run")),
        };
        // The caller may have gone away (cancelled future); nothing to do then.
        let _ = self.reply.send(answer);
    }
}

enum Msg {
    Op(Box<dyn WriteOp>),
    Close(oneshot::Sender<StoreResult<()>>),
}

/// Tuning of the writer thread.
#[derive(Debug, Clone, Copy)]
pub(super) struct WriterSettings {
    /// Most operations per transaction.
    pub max_batch: usize,
    /// How often an idle writer checks for other processes' commits.
    pub poll: Duration,
    /// A pause before the thread starts serving: stands in for a loaded
    /// machine that schedules the new thread late.
    #[cfg(test)]
    pub start_delay: Duration,
}

/// Handle to the writer thread.
pub(super) struct Writer {
    tx: Sender<Msg>,
}

/// The writer's most recent failed batch: when, and why. Read by health
/// checks; a later success does not clear it (a small write may fit where
/// the failed one did not).
pub(super) type LastFailure = Arc<std::sync::Mutex<Option<(Instant, String)>>>;

/// Where the writer's store lives, for messages and the state record.
pub(super) struct Place {
    /// The store file.
    pub path: PathBuf,
    /// The store's id (`store_meta.store_id`) and its commit count at open.
    pub state: StateRecord,
    /// Where the writer notes failed batches.
    pub last_failure: LastFailure,
    /// Where the writer publishes when a watched lease can next be judged.
    pub next_judgement: NextJudgement,
}

impl Writer {
    /// Starts the thread on `conn` (already configured and migrated).
    pub fn start(
        conn: Connection,
        place: Place,
        clock: Arc<dyn Clock>,
        config: StoreConfig,
        settings: WriterSettings,
        signals: Arc<Signals>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        // The baseline is read here, before `open` returns, not on the new
        // thread: a commit by another process between `open` and the
        // thread's first statement would otherwise be part of the baseline
        // and never wake anyone (the cause of a flaky cross-process test on
        // a loaded machine, and a real missed wake-up).
        let data_version = read_data_version(&conn).map_err(std::io::Error::other)?;
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                #[cfg(test)]
                std::thread::sleep(settings.start_delay);
                let mut thread = Thread {
                    leases: RefCell::new(LeaseWatch::new(Arc::clone(&place.next_judgement))),
                    conn,
                    location: place.path.display().to_string(),
                    place,
                    recorded: Instant::now(),
                    unrecorded: false,
                    clock,
                    config,
                    settings,
                    signals,
                    data_version,
                };
                let close = thread.main(rx);
                let closed = thread.shut_down();
                if let Some(done) = close {
                    let _ = done.send(closed);
                }
            })?;
        Ok(Self { tx })
    }

    /// Runs `op` in the next group commit; answers after the commit.
    pub async fn call<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Ctx) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            op: Some(op),
            result: None,
            reply,
        };
        self.tx
            .send(Msg::Op(Box::new(pending)))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Finishes queued operations, checkpoints the WAL into the database
    /// file, closes the connection and stops the thread; answers only after
    /// the connection is closed, so a process may exit right after.
    pub async fn close(&self) -> StoreResult<()> {
        let (done, stopped) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).is_err() {
            return Ok(());
        }
        stopped.await.unwrap_or(Ok(()))
    }
}

struct Thread {
    conn: Connection,
    leases: RefCell<LeaseWatch>,
    place: Place,
    location: String,
    /// When the state record was last written, and whether commits were
    /// counted since.
    recorded: Instant,
    unrecorded: bool,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
    settings: WriterSettings,
    signals: Arc<Signals>,
    data_version: i64,
}

impl Thread {
    /// Serves operations until closed (answering whom to tell) or until
    /// every handle is gone.
    fn main(&mut self, rx: Receiver<Msg>) -> Option<oneshot::Sender<StoreResult<()>>> {
        loop {
            let first = match rx.recv_timeout(self.settings.poll) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    self.check_foreign_writes();
                    self.record_state(false);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            };
            let mut batch = Vec::new();
            let mut close = None;
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    Msg::Op(op) => batch.push(op),
                    Msg::Close(done) => {
                        close = Some(done);
                        break;
                    }
                }
                next = if batch.len() < self.settings.max_batch {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if !batch.is_empty() {
                self.commit_batch(batch);
                self.record_state(false);
            }
            self.check_foreign_writes();
            if close.is_some() {
                return close;
            }
        }
    }

    /// Checkpoints the whole WAL into the database file, truncates it, and
    /// closes the connection. With no other connection open, SQLite then
    /// removes the `-wal` file: the `.db` alone holds every commit.
    fn shut_down(mut self) -> StoreResult<()> {
        self.record_state(true);
        // Recommended before closing a long-lived connection: keeps
        // planner statistics current at a bounded cost.
        if let Err(e) = self.conn.execute_batch("PRAGMA optimize") {
            tracing::warn!(error = %e, "PRAGMA optimize failed on close");
        }
        let checkpoint = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
        match checkpoint {
            Ok((0, _, _)) => {}
            // Another process still reads: it finishes the checkpoint when
            // it closes. Nothing is lost, the WAL is part of the store.
            Ok((_, log, done)) => tracing::info!(
                log,
                done,
                "WAL checkpoint on close was partial: another process has the store open"
            ),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint on close failed"),
        }
        self.conn.close().map_err(|(_, e)| {
            StoreError::backend(format!("closing the store connection failed: {e}"))
        })
    }

    /// Writes the state record: at most every [`integrity::RECORD_EVERY`]
    /// after commits, or now when `force`d (on close).
    fn record_state(&mut self, force: bool) {
        let due = self.unrecorded && self.recorded.elapsed() >= integrity::RECORD_EVERY;
        if !(due || (force && self.unrecorded)) {
            return;
        }
        self.recorded = Instant::now();
        self.unrecorded = false;
        if let Err(e) = integrity::write_record(&self.place.path, &self.place.state) {
            tracing::warn!(error = %e, store = %self.location, "could not write the store's state record");
        }
    }

    /// Where a failed batch's operations are told the disk is full, if it
    /// is; notes the failure for health checks.
    fn full_at(&self, full: bool, why: &str) -> Option<&str> {
        let noted = if full {
            StoreError::Full {
                location: self.location.clone(),
            }
            .to_string()
        } else {
            why.to_owned()
        };
        if let Ok(mut last) = self.place.last_failure.lock() {
            *last = Some((Instant::now(), format!("a write failed: {noted}")));
        }
        full.then_some(self.location.as_str())
    }

    fn commit_batch(&mut self, batch: Vec<Box<dyn WriteOp>>) {
        if let Err(e) = self
            .conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
        {
            let why = format!("could not start a write transaction: {e}");
            return fail_all(batch, self.full_at(is_disk_full(&e), &why), &why);
        }
        // Inside the transaction: the latest time any host committed. The
        // clock may follow it, so a job another host made due is due here.
        match read_clock_high(&self.conn) {
            Ok(Some(high)) => self.clock.observe(high),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the store's clock_high"),
        }
        let mut ctx = Ctx {
            now: self.clock.now(),
            mono: self.clock.elapsed(),
            config: &self.config,
            leases: &self.leases,
            wake: Cell::new(false),
            ended: Cell::new(false),
            after_commit: RefCell::new(Vec::new()),
        };
        let mut ran = Vec::with_capacity(batch.len());
        let mut pending = batch.into_iter();
        let mut broken = None;
        let mut full = false;
        for mut op in pending.by_ref() {
            ctx.now = self.clock.now();
            ctx.mono = self.clock.elapsed();
            let before = self.conn.total_changes();
            let outcome = op.run(&self.conn, &ctx);
            ran.push(op);
            let wrote = self.conn.total_changes() != before;
            match outcome {
                Ran::Done => {}
                Ran::Refused if !wrote => {}
                Ran::Refused => {
                    tracing::error!(
                        "a store operation refused after writing; rolling back its batch"
                    );
                    broken = Some("an operation refused after writing".to_owned());
                    break;
                }
                Ran::Broken => {
                    full = ran.last().is_some_and(|op| op.hit_full_disk());
                    broken = Some("a backend error in this batch".to_owned());
                    break;
                }
            }
        }
        // Count the commit (the state record's measure of acknowledged work)
        // when the batch wrote anything.
        let counted = match broken {
            None => match write_clock_high(&self.conn, ctx.now)
                .and_then(|()| integrity::count_commit(&self.conn))
            {
                Ok(n) => Some(n),
                Err(e) => {
                    full = is_disk_full(&e);
                    broken = Some(format!("counting the commit failed: {e}"));
                    None
                }
            },
            Some(_) => None,
        };
        let commit = match broken {
            None => self
                .conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
                .map_err(|e| {
                    full |= is_disk_full(&e);
                    format!("commit failed: {e}")
                }),
            Some(why) => Err(why),
        };
        match commit {
            Ok(()) => {
                if let Some(n) = counted {
                    self.place.state.commits = n;
                    self.unrecorded = true;
                }
                for f in ctx.after_commit.take() {
                    f();
                }
                // Signal before answering, so a caller that sees its enqueue
                // acknowledged also sees the signal.
                if ctx.wake.get() {
                    Signals::tick(&self.signals.work);
                }
                if ctx.ended.get() {
                    Signals::tick(&self.signals.ends);
                }
                for op in ran {
                    op.finish(Ok(()));
                }
            }
            Err(why) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                let why = format!("write batch rolled back: {why}");
                if full {
                    tracing::error!(store = %self.location, "write refused: the disk is full");
                }
                fail_all(
                    ran.into_iter().chain(pending),
                    self.full_at(full, &why),
                    &why,
                );
            }
        }
    }

    /// Ticks the change signal if another connection committed since the last look.
    fn check_foreign_writes(&mut self) {
        match read_data_version(&self.conn) {
            Ok(v) if v != self.data_version => {
                self.data_version = v;
                // Another process wrote: it may have made work available or
                // ended a job someone here waits for.
                Signals::tick(&self.signals.work);
                Signals::tick(&self.signals.ends);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read data_version"),
        }
    }
}

/// The latest time a host committed to this store (`store_meta.clock_high`).
fn read_clock_high(conn: &Connection) -> rusqlite::Result<Option<DateTime<Utc>>> {
    use rusqlite::OptionalExtension;
    let high: Option<i64> = conn
        .prepare_cached("SELECT CAST(value AS INTEGER) FROM store_meta WHERE key = 'clock_high'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    high.map(|t| time(0, t)).transpose()
}

/// Raises `store_meta.clock_high` to `now` (never lowers it).
fn write_clock_high(conn: &Connection, now: DateTime<Utc>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO store_meta (key, value) VALUES ('clock_high', CAST(?1 AS TEXT))
         ON CONFLICT (key) DO UPDATE SET value = excluded.value
          WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
    )?
    .execute([micros(now)])?;
    Ok(())
}

/// The connection's `PRAGMA data_version`, which changes only when another
/// connection commits.
fn read_data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

/// Answers every operation with the same error: the disk at `full_at` is
/// full, or a backend error saying `why`.
fn fail_all(ops: impl IntoIterator<Item = Box<dyn WriteOp>>, full_at: Option<&str>, why: &str) {
    for op in ops {
        let error = match full_at {
            Some(location) => StoreError::Full {
                location: location.to_owned(),
            },
            None => StoreError::backend(why),
        };
        op.finish(Err(error));
    }
}
