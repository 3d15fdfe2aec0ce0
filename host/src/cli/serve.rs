//! `taskhost serve`: run the workers, the scheduler and the HTTP API until
//! SIGINT or SIGTERM; then stop leasing, let running jobs finish for the
//! grace period, release the rest, and exit 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::BadInput;
use crate::api::{self, ApiState, Liveness};
use crate::config::Config;
use crate::services::Services;
use crate::worker::Workers;

/// A name for this process in leases and attempt histories: `host:pid`.
pub fn host_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

pub async fn execute(config: Arc<Config>) -> anyhow::Result<ExitCode> {
    // First, so a SIGTERM that comes as soon as the API answers (or while
    // the store opens) stops the host cleanly instead of killing it with
    // the store open.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let services = Services::open(config.clone()).await?;
    let (stop, stopped) = watch::channel(false);
    let host_id = host_id();
    let liveness = Arc::new(Liveness::default());

    let scheduler = Arc::new(services.scheduler(&host_id));
    // Refuse to start with a bad declared schedule; nothing is saved then.
    scheduler
        .sync_config(&config.schedules)
        .await
        .map_err(|e| BadInput(format!("config: {e}")))?;
    // Bind before starting work, so a bad address stops the start cleanly.
    let listener = match config.api.enabled {
        true => Some(
            api::bind(&services)
                .await
                .map_err(|e| BadInput(e.to_string()))?,
        ),
        false => None,
    };

    let presence_task = tokio::spawn(crate::presence::announce(
        services.store.clone(),
        services.clock.clone(),
        host_id.clone(),
        match config.workers.enabled {
            true => config.workers.queues.keys().cloned().collect(),
            false => Vec::new(),
        },
        stopped.clone(),
    ));
    let sweeper_task = tokio::spawn(crate::store::sweeper::run(
        services.store.clone(),
        config.store.sweep_every,
        stopped.clone(),
    ));
    let follow_task = services.follow_plugins(scheduler.clone(), stopped.clone());
    let deployed_task = crate::deploy::follow(
        services.runtime.clone(),
        services.store.clone(),
        stopped.clone(),
    );
    let watch_task = match config.host.watch {
        true => Some(
            crate::runtime::watcher::spawn(
                services.runtime.clone(),
                config.host.unload_grace,
                stopped.clone(),
            )
            .map_err(|e| BadInput(format!("{e} (set host.watch = false to run without)")))?,
        ),
        false => None,
    };
    let scheduler_task = config.scheduler.enabled.then(|| {
        liveness.scheduler.store(true, Ordering::Relaxed);
        let (scheduler, stopped, liveness) = (scheduler.clone(), stopped.clone(), liveness.clone());
        tokio::spawn(async move {
            scheduler.run(stopped).await;
            liveness.scheduler.store(false, Ordering::Relaxed);
        })
    });
    let workers = config.workers.enabled.then(|| {
        Workers::new(
            services.store.clone(),
            services.runtime.clone(),
            services.enqueuer.clone(),
            services.clock.clone(),
            config.workers.clone(),
            host_id.clone(),
        )
    });
    let worker_task = workers.clone().map(|workers| {
        liveness.workers.store(true, Ordering::Relaxed);
        let (stopped, liveness) = (stopped.clone(), liveness.clone());
        tokio::spawn(async move {
            let report = workers.run(stopped).await;
            liveness.workers.store(false, Ordering::Relaxed);
            report
        })
    });
    let api_task = match listener {
        Some((listener, auth)) => {
            eprintln!(
                "taskhost {host_id}: api listening on http://{}",
                listener.local_addr()?
            );
            let state = ApiState {
                services: services.clone(),
                workers: workers.clone(),
                scheduler: scheduler.clone(),
                auth: Arc::new(auth),
                liveness: liveness.clone(),
                started: Instant::now(),
            };
            let mut stopped = stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            Some(tokio::spawn(api::serve(listener, state, shutdown)))
        }
        None => None,
    };
    eprintln!(
        "taskhost {host_id} serving {} handler(s) and {} schedule(s) from {} on {}; queues: {}",
        services.runtime.registry().handlers().count(),
        scheduler.stats().schedules,
        config.plugin_dir().display(),
        config.store_location(),
        config
            .workers
            .queues
            .iter()
            .map(|(q, n)| format!("{q}×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!(
        "taskhost {host_id}: stopping; running jobs get {:?} to finish",
        config.workers.shutdown_grace
    );
    let _ = stop.send(true);
    let stopped_parts = stop_parts(
        &host_id,
        worker_task,
        scheduler_task,
        api_task,
        sweeper_task,
    )
    .await;
    let _ = follow_task.await;
    let _ = deployed_task.await;
    if let Some(task) = watch_task {
        let _ = task.await;
    }
    // The host's row goes last, once nothing of it runs any more.
    let _ = presence_task.await;
    // Close the store whatever happened above: closing checkpoints the WAL
    // into the database file, so the `.db` alone holds every commit.
    let closed = services.store.close().await.context("closing the store");
    if closed.is_ok() {
        eprintln!("taskhost {host_id}: store closed");
    }
    stopped_parts?;
    closed?;
    Ok(ExitCode::SUCCESS)
}

/// Waits for the background parts to stop, in the order that lets running
/// jobs record their results before the API and the store go away.
async fn stop_parts(
    host_id: &str,
    worker_task: Option<tokio::task::JoinHandle<crate::worker::ShutdownReport>>,
    scheduler_task: Option<tokio::task::JoinHandle<()>>,
    api_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    sweeper_task: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    if let Some(task) = worker_task {
        let report = task.await.context("the worker pool panicked")?;
        eprintln!(
            "taskhost {host_id}: {} job(s) finished, {} released",
            report.finished, report.released
        );
    }
    if let Some(task) = scheduler_task {
        task.await.context("the scheduler panicked")?;
    }
    if let Some(task) = api_task {
        task.await
            .context("the API server panicked")?
            .context("the API server failed")?;
    }
    sweeper_task
        .await
        .context("the retention sweeper panicked")?;
    Ok(())
}
