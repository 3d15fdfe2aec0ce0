//! Hot reload on real `taskhost serve` processes: a new version of `hello`
//! dropped into the plugin folder takes over with no failed job (jobs
//! before the switch ran the old digest, jobs after it the new one), a
//! corrupt file is refused while the old version serves on, a slow copy is
//! loaded once and complete, and a deleted plugin's jobs wait for it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use taskhost::job::{Job, JobId, JobStatus};
use taskhost::runtime::component_digest;

use crate::http_client::Server;
use crate::support::{
    TestHost, eventually, finished, plugin_dir, plugin_variant, request, services, shared_cache_dir,
};

const LIMIT: Duration = Duration::from_secs(60);

/// A host whose plugin folder (`<host>/plugins`) holds copies of `plugins`.
pub fn host_with(plugins: &[&str], extra: &str) -> (TestHost, PathBuf) {
    let host = TestHost::with_host_table(
        &format!(
            "plugins = \"plugins\"\ncache = {:?}\nunload_grace = \"300ms\"\n",
            shared_cache_dir().display().to_string()
        ),
        extra,
    );
    let dir = host.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    for p in plugins {
        let file = format!("{p}.wasm");
        std::fs::copy(plugin_dir().join(&file), dir.join(&file)).unwrap();
    }
    (host, dir)
}

/// The digest `GET /api/v1/plugins` shows for plugin `name`.
pub fn served_digest(server: &Server, name: &str) -> Option<String> {
    let plugins = server.get("/api/v1/plugins", None).json();
    plugins.as_array()?.iter().find(|p| p["name"] == name)?["digest"]
        .as_str()
        .map(str::to_owned)
}

/// Puts `bytes` at `to` all at once (a temporary file, then a rename).
fn drop_in(bytes: &[u8], to: &Path) {
    let tmp = to.with_file_name(".drop-in.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// The digest the job's last attempt ran on.
fn ran_on(job: &Job) -> String {
    job.attempts
        .last()
        .and_then(|a| a.plugin_digest.clone())
        .unwrap_or_else(|| panic!("job {} records no plugin digest: {job:?}", job.id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_dropped_in_takes_over_without_a_failed_job() {
    // One job at a time, so start order is run order.
    let (host, dir) = host_with(&["hello"], "[workers]\nqueues = { default = 1 }\n");
    let s = services(&host).await;
    let server = Server::start(&host);
    let old = component_digest(&std::fs::read(dir.join("hello.wasm")).unwrap());
    let next = std::fs::read(plugin_variant("hello")).unwrap();
    let new = component_digest(&next);
    assert_ne!(old, new, "the next version is another digest");

    // A stream of jobs, one every 10 ms, while the new version is dropped in.
    let mut ids: Vec<JobId> = Vec::new();
    let mut switched_at = None;
    for n in 0.. {
        let id = s
            .enqueuer
            .enqueue(request("hello", json!({"name": format!("n{n}")})))
            .await
            .unwrap()
            .id;
        ids.push(id);
        if n == 10 {
            drop_in(&next, &dir.join("hello.wasm"));
        }
        if switched_at.is_none() && served_digest(&server, "hello").as_deref() == Some(&new) {
            switched_at = Some(ids.len());
        }
        // Twenty jobs after the host reports the switch, stop.
        if switched_at.is_some_and(|at| ids.len() >= at + 20) {
            break;
        }
        assert!(n < 6_000, "the new version never went into service");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(finished(s.store.as_ref(), *id).await);
    }
    assert!(
        jobs.iter().all(|j| j.status == JobStatus::Succeeded),
        "every job succeeded: {:?}",
        jobs.iter()
            .filter(|j| j.status != JobStatus::Succeeded)
            .collect::<Vec<_>>()
    );
    jobs.sort_by_key(|j| j.attempts.last().map(|a| a.at));
    let digests: Vec<String> = jobs.iter().map(ran_on).collect();
    let first_new = digests
        .iter()
        .position(|d| *d == new)
        .expect("jobs ran on the new version");
    assert!(first_new > 0, "the first jobs ran on the old version");
    assert!(
        digests[..first_new].iter().all(|d| *d == old),
        "before the switch, only the old version"
    );
    assert!(
        digests[first_new..].iter().all(|d| *d == new),
        "after the switch, only the new version: {digests:?}"
    );
    // What each version said matches the digest it reports.
    for job in &jobs {
        let greeting = job.result.as_ref().unwrap()["greeting"]
            .as_str()
            .unwrap()
            .to_string();
        let says_hi = greeting.starts_with("Hi,");
        assert_eq!(says_hi, ran_on(job) == new, "{greeting} vs {}", ran_on(job));
    }

    // A corrupt file (a cut-off copy, dropped in whole) is refused, naming
    // the file and why, and the new version serves on.
    drop_in(&next[..next.len() / 2], &dir.join("hello.wasm"));
    let refusal = eventually(LIMIT, "the refusal in the log", || async {
        server
            .log_lines()
            .into_iter()
            .find(|l| l.contains("plugin refused") && l.contains("hello.wasm"))
    })
    .await;
    assert!(refusal.contains("cannot compile"), "{refusal}");
    assert_eq!(served_digest(&server, "hello").as_deref(), Some(&*new));
    let id = s
        .enqueuer
        .enqueue(request("hello", json!({"name": "after"})))
        .await
        .unwrap()
        .id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(ran_on(&job), new);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_copied_in_slowly_is_loaded_once_and_complete() {
    let (host, dir) = host_with(&["hello"], "");
    let server = Server::start(&host);
    let next = std::fs::read(plugin_variant("hello")).unwrap();
    let new = component_digest(&next);
    // Over the old file, in ten chunks over about a second.
    let mut file = std::fs::File::create(dir.join("hello.wasm")).unwrap();
    for chunk in next.chunks(next.len() / 10 + 1) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(file);
    eventually(LIMIT, "the new version in service", || async {
        (served_digest(&server, "hello").as_deref() == Some(&*new)).then_some(())
    })
    .await;
    let lines = server.log_lines();
    let loads = lines
        .iter()
        .filter(|l| l.contains("plugin version in service"))
        .count();
    assert_eq!(loads, 1, "loaded once: {lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("plugin refused")),
        "no half-written load was tried: {lines:#?}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_plugins_jobs_wait_and_resume_when_it_returns() {
    let (host, dir) = host_with(&["hello", "probe"], "");
    let s = services(&host).await;
    let server = Server::start(&host);
    let hello = std::fs::read(dir.join("hello.wasm")).unwrap();
    std::fs::remove_file(dir.join("hello.wasm")).unwrap();
    let waiting = eventually(LIMIT, "hello listed as waiting", || async {
        let stats = server.get("/api/v1/stats", None).json();
        stats["waiting_for_plugins"]
            .as_array()?
            .iter()
            .find(|w| w["plugin"] == "hello")
            .cloned()
    })
    .await;
    assert_eq!(waiting["handlers"], json!(["hello"]));

    // Jobs of its handler (enqueued through a host that still has it).
    let mut ids = Vec::new();
    for n in 0..3 {
        let req = request("hello", json!({"name": format!("w{n}")}));
        ids.push(s.enqueuer.enqueue(req).await.unwrap().id);
    }
    // A job of another plugin enqueued after them runs: the worker looked
    // past the waiting jobs, which stay pending with no attempt burnt.
    let marker = s
        .enqueuer
        .enqueue(request("probe.sleep", json!({"ms": 1})))
        .await
        .unwrap()
        .id;
    assert_eq!(
        finished(s.store.as_ref(), marker).await.status,
        JobStatus::Succeeded
    );
    for id in &ids {
        let job = s.store.get(*id).await.unwrap();
        assert_eq!(job.status, JobStatus::Pending, "{job:?}");
        assert!(job.attempts.is_empty(), "{job:?}");
    }

    // It comes back: the waiting jobs run.
    drop_in(&hello, &dir.join("hello.wasm"));
    for id in &ids {
        assert_eq!(
            finished(s.store.as_ref(), *id).await.status,
            JobStatus::Succeeded
        );
    }
    let stats = server.get("/api/v1/stats", None).json();
    assert_eq!(stats["waiting_for_plugins"], json!([]));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_plugin_file_takes_over_its_handlers_after_the_grace() {
    let (host, dir) = host_with(&["hello"], "");
    let s = services(&host).await;
    let server = Server::start(&host);
    // The new name clashes with the old one (both provide `hello`) until
    // the old one's grace ends; then it takes over.
    std::fs::rename(dir.join("hello.wasm"), dir.join("greet.wasm")).unwrap();
    eventually(LIMIT, "greet in service instead of hello", || async {
        let plugins = server.get("/api/v1/plugins", None).json();
        let names: Vec<&str> = plugins
            .as_array()?
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        (names == ["greet"]).then_some(())
    })
    .await;
    let stats = server.get("/api/v1/stats", None).json();
    assert_eq!(stats["waiting_for_plugins"], json!([]), "nothing waits");
    let id = s
        .enqueuer
        .enqueue(request("hello", json!({"name": "renamed"})))
        .await
        .unwrap()
        .id;
    assert_eq!(
        finished(s.store.as_ref(), id).await.status,
        JobStatus::Succeeded
    );
    server.stop();
}
