//! A small pool of reading threads, each with its own connection. In WAL mode
//! readers never wait for the writer, so API listings and stats do not slow
//! down leasing, and no tokio worker ever blocks on SQLite.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::schema::{self, Durability};
use crate::store::{StoreError, StoreResult};

type ReadOp = Box<dyn FnOnce(&Connection) + Send>;

/// Handle to the reader threads.
pub(super) struct Readers {
    /// `None` once closed; the threads end when the sender is gone.
    tx: Mutex<Option<Sender<ReadOp>>>,
    /// The threads, joined on close so their connections are closed before
    /// the writer checkpoints (a reader still open would keep the WAL).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Readers {
    /// Opens `count` read-only connections on `path`, one thread each.
    pub fn start(path: &Path, count: usize, durability: Durability) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel::<ReadOp>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..count.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            schema::configure(&conn, durability)?;
            conn.execute_batch("PRAGMA query_only = ON")?;
            let rx = Arc::clone(&rx);
            let thread = std::thread::Builder::new()
                .name(format!("store-reader-{i}"))
                .spawn(move || {
                    serve(&conn, &rx);
                    if let Err((_, e)) = conn.close() {
                        tracing::warn!(error = %e, "closing a store reader connection failed");
                    }
                })
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
            threads.push(thread);
        }
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        })
    }

    /// Runs `f` on a reader connection.
    pub async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op: ReadOp = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        {
            let tx = self.tx.lock().map_err(|_| StoreError::Closed)?;
            tx.as_ref()
                .ok_or(StoreError::Closed)?
                .send(op)
                .map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Lets the threads finish what they hold, then waits until each has
    /// ended and closed its connection. Blocks: call off the async runtime.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let threads = match self.threads.lock() {
            Ok(mut threads) => std::mem::take(&mut *threads),
            Err(_) => return,
        };
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a store reader thread panicked");
            }
        }
    }
}

fn serve(conn: &Connection, rx: &Mutex<Receiver<ReadOp>>) {
    loop {
        // Hold the lock only to take one operation, not while running it.
        let op = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match op {
            Ok(op) => op(conn),
            Err(_) => return,
        }
    }
}
