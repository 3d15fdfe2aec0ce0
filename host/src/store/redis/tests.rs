//! The conformance suite on Redis (each test under its own key prefix on one
//! shared `redis-server`), plus what only Redis has: hosts on one Redis
//! signalling each other, surviving a Redis restart, the URL checks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::test_server::RedisServer;
use super::{RedisOptions, RedisStore, StoreTime};
use crate::clock::{ManualClock, SystemClock};
use crate::job::{JobId, JobStatus, NewJob};
use crate::store::conformance::{self, Backend, conformance_suite};
use crate::store::{LeaseRequest, Store, StoreError};

/// A fresh key prefix on the shared server; time from the test's clock.
struct RedisBackend {
    prefix: String,
}

impl RedisBackend {
    fn new() -> Self {
        Self {
            prefix: format!("test:{}:", uuid::Uuid::now_v7()),
        }
    }

    fn options(&self, url: String) -> RedisOptions {
        RedisOptions {
            prefix: self.prefix.clone(),
            time: StoreTime::Clock,
            ..RedisOptions::new(url)
        }
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn open(&self, clock: Arc<ManualClock>) -> Arc<dyn Store> {
        let options = self.options(RedisServer::shared().url());
        Arc::new(RedisStore::open(options, clock).await.expect("open store"))
    }
}

conformance_suite!(RedisBackend::new());

/// A store on `url` under `prefix`, on Redis time.
async fn open(url: String, prefix: &str) -> RedisStore {
    let options = RedisOptions {
        prefix: prefix.to_owned(),
        ..RedisOptions::new(url)
    };
    RedisStore::open(options, Arc::new(SystemClock))
        .await
        .expect("open store")
}

fn request(handlers: &[&str]) -> LeaseRequest {
    LeaseRequest {
        queues: vec!["default".into()],
        handlers: handlers.iter().map(|h| h.to_string()).collect(),
        worker: "w".into(),
        lease_for: Duration::from_secs(30),
        max: 10,
        limits: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hosts_enqueue_wakes_this_hosts_workers() {
    let prefix = format!("signal:{}:", uuid::Uuid::now_v7());
    let url = RedisServer::shared().url();
    let (a, b) = (open(url.clone(), &prefix).await, open(url, &prefix).await);
    let mut changes = a.changes();
    let mut ends = a.job_ends();
    changes.borrow_and_update();
    ends.borrow_and_update();
    b.enqueue(NewJob::new("x", serde_json::Value::Null))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), changes.changed())
        .await
        .expect("woken by the other host's enqueue")
        .unwrap();
    let held = b.lease(&request(&["x"])).await.unwrap();
    b.complete(
        &held[0].token,
        serde_json::json!(1),
        crate::job::RunReport::succeeded(Duration::ZERO),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), ends.changed())
        .await
        .expect("woken by the other host's completion")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_skips_a_deep_backlog_of_handlers_not_served() {
    let store = open(
        RedisServer::shared().url(),
        &format!("deep:{}:", uuid::Uuid::now_v7()),
    )
    .await;
    let other: Vec<_> = (0..3000)
        .map(|_| NewJob::new("not-here", serde_json::Value::Null))
        .collect();
    store.enqueue_batch(other).await.unwrap();
    let mine = store
        .enqueue(NewJob::new("here", serde_json::Value::Null))
        .await
        .unwrap()
        .id;
    let got = store.lease(&request(&["here"])).await.unwrap();
    assert_eq!(got.iter().map(|l| l.job.id).collect::<Vec<_>>(), [mine]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_redis_restart() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    let store = open(server.url(), "restart:").await;
    store
        .enqueue(NewJob::new("x", serde_json::Value::Null))
        .await
        .unwrap();
    server.kill();
    drop(server);
    // Same port again, empty (no persistence): the scripts are gone too.
    let server = RedisServer::start_on(port).unwrap();
    // The signal connection comes back by itself (and ticks, since
    // messages may have been missed), then carries other hosts' writes.
    let mut changes = store.changes();
    changes.borrow_and_update();
    tokio::time::timeout(Duration::from_secs(30), changes.changed())
        .await
        .expect("the signal connection is re-made")
        .unwrap();
    let other = open(server.url(), "restart:").await;
    changes.borrow_and_update();
    other
        .enqueue(NewJob::new("z", serde_json::Value::Null))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), changes.changed())
        .await
        .expect("woken by another host after the restart")
        .unwrap();
    let id = store
        .enqueue(NewJob::new("y", serde_json::Value::Null))
        .await
        .expect("the first command after the restart reconnects")
        .id;
    assert_eq!(store.get(id).await.unwrap().status, JobStatus::Pending);
}

#[tokio::test]
async fn wrong_password_names_the_url_without_it() {
    let server = RedisServer::start_with(&["--requirepass", "right"]).unwrap();
    let options = RedisOptions {
        password: Some("wrong-secret".into()),
        ..RedisOptions::new(server.url())
    };
    let err = RedisStore::open(options, Arc::new(SystemClock))
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{text}");
    assert!(
        text.contains(&server.url()) && !text.contains("wrong-secret"),
        "{text}"
    );
    let options = RedisOptions {
        password: Some("right".into()),
        ..RedisOptions::new(server.url())
    };
    let store = RedisStore::open(options, Arc::new(SystemClock))
        .await
        .unwrap();
    store.check_writable().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_filter_pages_with_a_cursor_instead_of_scanning_everything() {
    let store = open(
        RedisServer::shared().url(),
        &format!("sparse:{}:", uuid::Uuid::now_v7()),
    )
    .await;
    let job =
        |handler: &str, queue: &str| NewJob::new(handler, serde_json::Value::Null).queue(queue);
    let wanted = store.enqueue(job("h", "q")).await.unwrap().id;
    // Both filters match many jobs, together only one: more than one
    // call's scan budget lies between the newest job and it.
    for _ in 0..super::ops::LIST_BUDGET / 500 + 1 {
        let mut batch: Vec<_> = (0..500).map(|_| job("other", "q")).collect();
        batch.extend((0..500).map(|_| job("h", "elsewhere")));
        store.enqueue_batch(batch).await.unwrap();
    }
    let mut query = crate::store::ListQuery {
        queue: Some("q".into()),
        handler: Some("h".into()),
        limit: 10,
        ..Default::default()
    };
    let (mut found, mut calls) = (Vec::new(), 0);
    loop {
        let page = store.list(&query).await.unwrap();
        calls += 1;
        found.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(found, [wanted]);
    assert!(calls > 1, "one call scanned past its budget");
}

/// Options for the TLS server `server`, trusting its CA when `trust`.
fn tls_options(server: &RedisServer, prefix: &str, trust: bool) -> RedisOptions {
    let ca = server.tls_ca().expect("a TLS server");
    RedisOptions {
        prefix: prefix.to_owned(),
        tls: super::RedisTls {
            ca: trust.then(|| super::read_tls_ca(ca).expect("the test CA reads")),
            client: None,
        },
        ..RedisOptions::new(server.url())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_runs_a_job_and_carries_signals() {
    let server = RedisServer::start_tls(false).unwrap();
    assert!(server.url().starts_with("rediss://"), "{}", server.url());
    let prefix = format!("tls:{}:", uuid::Uuid::now_v7());
    let open_tls = || async {
        RedisStore::open(tls_options(&server, &prefix, true), Arc::new(SystemClock))
            .await
            .expect("open over TLS")
    };
    let (a, b) = (open_tls().await, open_tls().await);
    // The signal connection is TLS too: b's enqueue wakes a.
    let mut changes = a.changes();
    changes.borrow_and_update();
    let id = b
        .enqueue(NewJob::new("x", serde_json::Value::Null))
        .await
        .unwrap()
        .id;
    tokio::time::timeout(Duration::from_secs(30), changes.changed())
        .await
        .expect("woken through the TLS signal connection")
        .unwrap();
    let held = a.lease(&request(&["x"])).await.unwrap();
    assert_eq!(held.len(), 1);
    a.complete(
        &held[0].token,
        serde_json::json!("done"),
        crate::job::RunReport::succeeded(Duration::ZERO),
    )
    .await
    .unwrap();
    assert_eq!(b.get(id).await.unwrap().status, JobStatus::Succeeded);
}

#[tokio::test]
async fn rediss_without_its_ca_is_refused_as_untrusted_naming_the_url_only() {
    let server = RedisServer::start_tls(false).unwrap();
    let options = RedisOptions {
        password: Some("tls-secret".into()),
        ..tls_options(&server, "untrusted:", false)
    };
    let err = RedisStore::open(options, Arc::new(SystemClock))
        .await
        .err()
        .expect("an unknown CA is refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{text}");
    assert!(
        text.contains(&server.url())
            && text.contains("certificate was not trusted")
            && text.contains("tls_ca")
            && !text.contains("tls-secret"),
        "{text}"
    );
}

#[tokio::test]
async fn a_tls_ca_that_is_no_certificate_or_on_plain_redis_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = super::read_tls_ca(&missing).unwrap_err();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let err = super::read_tls_ca(&junk).unwrap_err();
    assert!(
        err.contains(&junk.display().to_string()) && err.contains("no PEM certificate"),
        "{err}"
    );
    let options = RedisOptions {
        tls: super::RedisTls {
            ca: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            client: None,
        },
        ..RedisOptions::new(RedisServer::shared().url())
    };
    let err = RedisStore::open(options, Arc::new(SystemClock))
        .await
        .err()
        .expect("a CA without TLS is a mistake");
    assert!(err.to_string().contains("not rediss://"), "{err}");
}

#[tokio::test]
async fn a_server_that_checks_clients_takes_the_client_certificate_given() {
    let server = RedisServer::start_tls(true).unwrap();
    let without = RedisStore::open(tls_options(&server, "mtls:", true), Arc::new(SystemClock))
        .await
        .err()
        .expect("no client certificate, no connection");
    let text = without.to_string();
    assert!(
        text.contains(&server.url()) && text.contains("wants a client certificate"),
        "{text}"
    );
    let (cert, key) = server.tls_client().unwrap();
    let mut options = tls_options(&server, "mtls:", true);
    options.tls.client = Some(super::read_tls_client(cert, key).expect("the test pair reads"));
    let store = RedisStore::open(options, Arc::new(SystemClock))
        .await
        .expect("the client certificate is accepted");
    let id = store
        .enqueue(NewJob::new("x", serde_json::Value::Null))
        .await
        .unwrap()
        .id;
    assert_eq!(store.get(id).await.unwrap().status, JobStatus::Pending);
    // A key file that holds no key is refused by its name.
    let err = super::read_tls_client(cert, cert).unwrap_err();
    assert!(
        err.contains("tls_key") && err.contains(&cert.display().to_string()),
        "{err}"
    );
}

/// A store on the test's clock under a fresh prefix, with the first chunk
/// of [`conformance::keyed_batch`] only written, as a start that died
/// before the next would have; answers the batch id too.
async fn partial_start() -> (RedisStore, JobId) {
    let clock = Arc::new(ManualClock::new(conformance::start()));
    let options = RedisBackend::new().options(RedisServer::shared().url());
    let store = RedisStore::open(options, clock).await.expect("open store");
    let p = crate::store::batch::prepare(&conformance::keyed_batch()).unwrap();
    let head = serde_json::to_string(&p.head).unwrap();
    store
        .add_chunk(p.id, Some(&head), p.head.key.as_deref(), p.chunk_from(0))
        .await
        .unwrap();
    (store, p.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_start_repeated_under_its_key_writes_what_its_maker_did_not() {
    let (store, id) = partial_start().await;
    conformance::resumed_batch_writes_only_what_is_missing(&store, id).await;
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_partly_written_batch_closes_it() {
    let (store, id) = partial_start().await;
    conformance::cancelled_partial_batch_is_closed(&store, id).await;
    store.close().await.unwrap();
}
