//! The change signals of the Redis store. Every script that makes work
//! available or ends a job publishes on the store's channel; each store
//! keeps one dedicated pub/sub connection (never the shared command
//! connection, where a blocked read would stall every command) and turns
//! the messages into ticks of its `changes()` and `job_ends()` channels,
//! so idle workers on any host wake within a millisecond, without polling.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

/// The two signals a store hands out.
#[derive(Debug)]
pub(super) struct Signals {
    pub work: watch::Sender<u64>,
    pub ends: watch::Sender<u64>,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            work: watch::channel(0).0,
            ends: watch::channel(0).0,
        }
    }
}

impl Signals {
    /// Ticks what a message (`w`, `e` or both) names.
    pub fn apply(&self, what: &[u8]) {
        if what.contains(&b'w') {
            self.work.send_modify(|n| *n = n.wrapping_add(1));
        }
        if what.contains(&b'e') {
            self.ends.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// Subscribes to `channel` (so the first message after `open` is not
/// missed), then forwards messages until `stop` turns true. A broken
/// connection is re-made; both signals tick then, since messages sent in
/// between are lost and waiters must look again.
pub(super) async fn listen(
    client: redis::Client,
    channel: String,
    signals: Arc<Signals>,
    stop: watch::Receiver<bool>,
) -> redis::RedisResult<tokio::task::JoinHandle<()>> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&channel).await?;
    Ok(tokio::spawn(forward(
        client, channel, signals, stop, pubsub,
    )))
}

async fn forward(
    client: redis::Client,
    channel: String,
    signals: Arc<Signals>,
    mut stop: watch::Receiver<bool>,
    first: redis::aio::PubSub,
) {
    let mut pubsub = Some(first);
    let mut backoff = Duration::from_millis(50);
    loop {
        if let Some(mut conn) = pubsub.take() {
            backoff = Duration::from_millis(50);
            let mut messages = conn.on_message();
            loop {
                tokio::select! {
                    msg = messages.next() => match msg {
                        Some(msg) => signals.apply(msg.get_payload_bytes()),
                        None => break,
                    },
                    _ = stop.changed() => return,
                }
            }
            tracing::warn!("the Redis signal connection broke; reconnecting");
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
        match client.get_async_pubsub().await {
            Ok(mut conn) => match conn.subscribe(&channel).await {
                Ok(()) => {
                    signals.apply(b"we");
                    pubsub = Some(conn);
                }
                Err(e) => tracing::warn!("cannot subscribe to Redis signals: {e}"),
            },
            Err(e) => tracing::debug!("cannot reconnect to Redis for signals: {e}"),
        }
    }
}
