//! Completions in batches: `complete` hands its run to one task, which
//! records every completion waiting at that moment in one script call, so
//! a busy host pays one round trip (and one signal) per batch, not per job.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::Runner;
use super::codec::{array, text};
use super::scripts::COMPLETE;
use super::signals::Signals;
use crate::job::JobId;
use crate::store::{StoreError, StoreResult};

/// The most completions one call records.
const MAX_BATCH: usize = 256;

/// One run to record as succeeded: the fields `complete.lua` takes.
pub(super) struct Completion {
    pub job: JobId,
    pub args: [String; 6],
    pub reply: oneshot::Sender<StoreResult<()>>,
}

/// Starts the task; it ends when `stop` turns true or the store is dropped.
pub(super) fn start(
    runner: Arc<Runner>,
    signals: Arc<Signals>,
    stop: watch::Receiver<bool>,
) -> mpsc::UnboundedSender<Completion> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(runner, signals, rx, stop));
    tx
}

async fn run(
    runner: Arc<Runner>,
    signals: Arc<Signals>,
    mut rx: mpsc::UnboundedReceiver<Completion>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            c = rx.recv() => match c {
                Some(c) => c,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut args = Vec::with_capacity(1 + batch.len() * 6);
        args.push(batch.len().to_string());
        for c in &batch {
            args.extend(c.args.iter().cloned());
        }
        match answers(runner.run(&COMPLETE, &args).await, batch.len()) {
            Ok(answers) => {
                if answers.iter().any(|a| a == "ok") {
                    signals.apply(b"e");
                }
                for (c, a) in batch.into_iter().zip(answers) {
                    let result = match a.as_str() {
                        "ok" => Ok(()),
                        "nf" => Err(StoreError::NotFound(c.job)),
                        "lost" => Err(StoreError::LeaseLost(c.job)),
                        other => Err(StoreError::backend(format!(
                            "unexpected answer {other:?} completing job {}",
                            c.job
                        ))),
                    };
                    let _ = c.reply.send(result);
                }
            }
            Err(e) => {
                let message = match &e {
                    StoreError::Backend(inner) => inner.to_string(),
                    other => other.to_string(),
                };
                for c in batch {
                    let _ = c.reply.send(Err(StoreError::backend(message.clone())));
                }
            }
        }
    }
}

fn answers(reply: StoreResult<redis::Value>, n: usize) -> StoreResult<Vec<String>> {
    let reply = reply?;
    let answers = array(&reply)?
        .iter()
        .map(text)
        .collect::<StoreResult<Vec<_>>>()?;
    if answers.len() != n {
        return Err(StoreError::backend(format!(
            "{} answers to {n} completions",
            answers.len()
        )));
    }
    Ok(answers)
}
