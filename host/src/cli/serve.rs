//! `taskhost serve`: run the workers until SIGINT or SIGTERM, then stop
//! leasing, let running jobs finish for the grace period, and release the rest.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

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
    let services = Services::open(config.clone()).await?;
    let (stop, stopped) = watch::channel(false);
    let host_id = host_id();
    let scheduler = Arc::new(services.scheduler(&host_id));
    // Refuse to start with a bad declared schedule; nothing is saved then.
    scheduler
        .sync_config(&config.schedules)
        .await
        .map_err(|e| super::BadInput(format!("config: {e}")))?;
    let scheduler_task = config
        .scheduler
        .enabled
        .then(|| tokio::spawn(scheduler.clone().run(stopped.clone())));
    let workers = config.workers.enabled.then(|| {
        let workers = Workers::new(
            services.store.clone(),
            services.runtime.clone(),
            services.enqueuer.clone(),
            services.clock.clone(),
            config.workers.clone(),
            host_id.clone(),
        );
        tokio::spawn(workers.run(stopped.clone()))
    });
    eprintln!(
        "taskhost {host_id} serving {} handler(s) and {} schedule(s) from {} on {}; queues: {}",
        services.runtime.registry().handlers().count(),
        scheduler.stats().schedules,
        config.plugin_dir().display(),
        config.store_path().display(),
        config
            .workers
            .queues
            .iter()
            .map(|(q, n)| format!("{q}×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!(
        "taskhost {host_id}: stopping; running jobs get {:?} to finish",
        config.workers.shutdown_grace
    );
    let _ = stop.send(true);
    if let Some(workers) = workers {
        let report = workers.await.context("the worker pool panicked")?;
        eprintln!(
            "taskhost {host_id}: {} job(s) finished, {} released",
            report.finished, report.released
        );
    }
    if let Some(task) = scheduler_task {
        task.await.context("the scheduler panicked")?;
    }
    services.store.close().await.context("closing the store")?;
    Ok(ExitCode::SUCCESS)
}
