//! `unique = "while-active"` on a real `serve`: a duplicate (same handler
//! and unique key: the enqueue's `unique_key`, else the payload) is refused
//! with the original id while the first is pending or running, and accepted
//! once it ended.

use std::time::Duration;

use serde_json::{Value, json};
use taskhost::job::{JobId, JobStatus};
use taskhost::store::Store;

use crate::http_client::Server;
use crate::support::{TestHost, eventually, finished, services};

/// Enqueues through the API; answers (status, id, created).
fn enqueue(api: &Server, body: Value) -> (u16, String, bool) {
    let r = api.post("/api/v1/jobs", None, &body);
    let answer = r.json();
    (
        r.status,
        answer["id"].as_str().unwrap_or_default().to_string(),
        answer["created"].as_bool().unwrap_or(false),
    )
}

async fn status(store: &dyn Store, id: &str) -> JobStatus {
    store.get(id.parse().unwrap()).await.unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_handler_refuses_a_duplicate_while_the_first_is_active() {
    let host = TestHost::new(
        "[workers]\nqueues = { default = 4 }\n\
         [handlers.\"probe.sleep\"]\nunique = \"while-active\"\ntimeout = \"120s\"\n",
    );
    let api = Server::start(&host);
    let s = services(&host).await;
    let store = s.store.as_ref();

    // Pending: a queue no worker serves keeps it waiting.
    let parked = json!({"handler": "probe.sleep", "payload": {"ms": 1}, "queue": "parked"});
    let (code, first, created) = enqueue(&api, parked.clone());
    assert_eq!((code, created), (201, true));
    let (code, again, created) = enqueue(&api, parked.clone());
    assert_eq!(
        (code, again.as_str(), created),
        (200, first.as_str(), false)
    );
    assert_eq!(status(store, &first).await, JobStatus::Pending);
    // The same payload in another member order is the same key; another
    // payload is another key.
    let reordered = json!({"payload": {"ms": 1}, "queue": "parked", "handler": "probe.sleep"});
    assert_eq!(enqueue(&api, reordered).1, first);
    let other = json!({"handler": "probe.sleep", "payload": {"ms": 2}, "queue": "parked"});
    assert_ne!(enqueue(&api, other).1, first);

    // Running, by explicit key: a different payload with the same key is
    // the same job.
    let long = json!({"handler": "probe.sleep", "payload": {"ms": 1500}, "unique_key": "user-7"});
    let (code, running, _) = enqueue(&api, long);
    assert_eq!(code, 201);
    eventually(Duration::from_secs(60), "the job to run", || async {
        (status(store, &running).await == JobStatus::Running).then_some(())
    })
    .await;
    let dup = json!({"handler": "probe.sleep", "payload": {"ms": 1}, "unique_key": "user-7"});
    let (code, again, created) = enqueue(&api, dup.clone());
    assert_eq!(
        (code, again.as_str(), created),
        (200, running.as_str(), false)
    );

    // Accepted once the first ended.
    let ended = finished(store, running.parse::<JobId>().unwrap()).await;
    assert_eq!(ended.status, JobStatus::Succeeded);
    let (code, after, created) = enqueue(&api, dup);
    assert_eq!((code, created), (201, true));
    assert_ne!(after, running);

    // A unique key for a handler that is not unique is refused, and
    // nothing is enqueued.
    let before = store.counts().await.unwrap().sum(None, None, None);
    let r = api.post(
        "/api/v1/jobs",
        None,
        &json!({"handler": "hello", "payload": {"name": "x"}, "unique_key": "k"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not unique"), "{}", r.text());
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), before);
    api.stop();
}
