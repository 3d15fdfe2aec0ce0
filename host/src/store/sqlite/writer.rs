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

use std::cell::Cell;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

use crate::clock::Clock;
use crate::store::{StoreConfig, StoreError, StoreResult};

/// What an operation sees while it runs.
pub(super) struct Ctx<'a> {
    /// The store clock's time when this operation started.
    pub now: DateTime<Utc>,
    /// Store settings (TTLs, retention).
    pub config: &'a StoreConfig,
    wake: Cell<bool>,
}

impl Ctx<'_> {
    /// Marks that this operation made work available (enqueue, retry,
    /// release…), so waiting workers are woken after the commit.
    pub fn notify(&self) {
        self.wake.set(true);
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
            Some(Err(StoreError::Backend(_))) | None => Ran::Broken,
            Some(Err(_)) => Ran::Refused,
        };
        self.result = result;
        ran
    }

    fn finish(self: Box<Self>, commit: StoreResult<()>) {
        // The operation's own error says more than the batch's.
        let answer = match (commit, self.result) {
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
    Close(oneshot::Sender<()>),
}

/// Tuning of the writer thread.
#[derive(Debug, Clone, Copy)]
pub(super) struct WriterSettings {
    /// Most operations per transaction.
    pub max_batch: usize,
    /// How often an idle writer checks for other processes' commits.
    pub poll: Duration,
}

/// Handle to the writer thread.
pub(super) struct Writer {
    tx: Sender<Msg>,
}

impl Writer {
    /// Starts the thread on `conn` (already configured and migrated).
    pub fn start(
        conn: Connection,
        clock: Arc<dyn Clock>,
        config: StoreConfig,
        settings: WriterSettings,
        changes: Arc<watch::Sender<u64>>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let mut thread = Thread {
                    conn,
                    clock,
                    config,
                    settings,
                    changes,
                    data_version: 0,
                };
                thread.main(rx);
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

    /// Finishes queued operations and stops the thread (closing the
    /// connection, which checkpoints the WAL when it is the last one).
    pub async fn close(&self) -> StoreResult<()> {
        let (done, stopped) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).is_err() {
            return Ok(());
        }
        let _ = stopped.await;
        Ok(())
    }
}

struct Thread {
    conn: Connection,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
    settings: WriterSettings,
    changes: Arc<watch::Sender<u64>>,
    data_version: i64,
}

impl Thread {
    fn main(&mut self, rx: Receiver<Msg>) {
        self.data_version = self.read_data_version().unwrap_or(0);
        loop {
            let first = match rx.recv_timeout(self.settings.poll) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    self.check_foreign_writes();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
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
            }
            self.check_foreign_writes();
            if let Some(done) = close {
                // Recommended before closing a long-lived connection: keeps
                // planner statistics current at a bounded cost.
                if let Err(e) = self.conn.execute_batch("PRAGMA optimize") {
                    tracing::warn!(error = %e, "PRAGMA optimize failed on close");
                }
                let _ = done.send(());
                return;
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<Box<dyn WriteOp>>) {
        let mut ctx = Ctx {
            now: self.clock.now(),
            config: &self.config,
            wake: Cell::new(false),
        };
        if let Err(e) = self
            .conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
        {
            let why = format!("could not start a write transaction: {e}");
            return fail_all(batch, &why);
        }
        let mut ran = Vec::with_capacity(batch.len());
        let mut pending = batch.into_iter();
        let mut broken = None;
        for mut op in pending.by_ref() {
            ctx.now = self.clock.now();
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
                    broken = Some("a backend error in this batch".to_owned());
                    break;
                }
            }
        }
        let commit = match broken {
            None => self
                .conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
                .map_err(|e| format!("commit failed: {e}")),
            Some(why) => Err(why),
        };
        match commit {
            Ok(()) => {
                // Signal before answering, so a caller that sees its enqueue
                // acknowledged also sees the signal.
                if ctx.wake.get() {
                    self.changes.send_modify(|n| *n = n.wrapping_add(1));
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
                fail_all(ran.into_iter().chain(pending), &why);
            }
        }
    }

    fn read_data_version(&self) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))
    }

    /// Ticks the change signal if another connection committed since the last look.
    fn check_foreign_writes(&mut self) {
        match self.read_data_version() {
            Ok(v) if v != self.data_version => {
                self.data_version = v;
                self.changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read data_version"),
        }
    }
}

/// Answers every operation with the same backend error.
fn fail_all(ops: impl IntoIterator<Item = Box<dyn WriteOp>>, why: &str) {
    for op in ops {
        op.finish(Err(StoreError::backend(why)));
    }
}
