//! `taskhost dlq …` and `taskhost queue …`: operate on dead jobs and queues.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::jobs::parse_id;
use super::output::{job_detail, job_table};
use crate::config::Config;
use crate::job::{JobStatus, Priority};
use crate::services::open_store;
use crate::store::Store;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead jobs, newest first.
    List {
        #[arg(long, short)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One dead job with its whole attempt history.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a dead job (or with --all, every dead job) a fresh attempt budget.
    Retry {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[arg(long, short)]
        queue: Option<String>,
    },
    /// Delete dead jobs.
    Purge {
        #[arg(long, short)]
        queue: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Jobs per queue: pending per priority, scheduled, running, dead, total.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Stop leasing a queue's jobs (running ones finish).
    Pause {
        queue: String,
    },
    Resume {
        queue: String,
    },
    /// Delete a queue's waiting jobs.
    Purge {
        queue: String,
    },
}

async fn store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_store(config, Arc::new(crate::clock::SystemClock)).await?)
}

pub async fn dlq(config: Arc<Config>, cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    let store = store(&config).await?;
    match cmd {
        DlqCommand::List { queue, limit, json } => {
            let page = store.dlq_list(queue.as_deref(), None, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", job_table(&page.jobs));
            }
        }
        DlqCommand::Show { id, json } => {
            let job = store.get(parse_id(&id)?).await?;
            if job.status != JobStatus::Dead {
                return Err(super::BadInput(format!(
                    "job {id} is {}, not dead",
                    job.status.as_str()
                ))
                .into());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print!("{}", job_detail(&job));
            }
        }
        DlqCommand::Retry { id: Some(id), .. } => {
            store.dlq_retry(parse_id(&id)?).await?;
            println!("{id} queued again");
        }
        DlqCommand::Retry {
            id: None,
            all: true,
            queue,
        } => {
            println!(
                "{} job(s) queued again",
                store.dlq_retry_all(queue.as_deref()).await?
            );
        }
        DlqCommand::Retry {
            id: None,
            all: false,
            ..
        } => {
            return Err(super::BadInput("give a job id or --all".into()).into());
        }
        DlqCommand::Purge { queue } => println!(
            "{} dead job(s) deleted",
            store.dlq_purge(queue.as_deref()).await?
        ),
    }
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn queue(config: Arc<Config>, cmd: QueueCommand) -> anyhow::Result<ExitCode> {
    let store = store(&config).await?;
    match cmd {
        QueueCommand::Stats { json } => {
            let stats = crate::stats::queue_stats(store.as_ref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!(
                    "{:<16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}  STATE",
                    "QUEUE",
                    "CRIT",
                    "HIGH",
                    "NORMAL",
                    "LOW",
                    "SCHEDULED",
                    "RUNNING",
                    "DEAD",
                    "TOTAL"
                );
                for q in &stats {
                    let p = |pr: Priority| q.pending.get(pr.as_str()).copied().unwrap_or(0);
                    println!(
                        "{:<16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}  {}",
                        q.name,
                        p(Priority::Critical),
                        p(Priority::High),
                        p(Priority::Normal),
                        p(Priority::Low),
                        q.scheduled,
                        q.running,
                        q.dead,
                        q.total,
                        if q.paused { "paused" } else { "active" }
                    );
                }
            }
        }
        QueueCommand::Pause { queue } => {
            store.pause_queue(&queue).await?;
            println!("{queue} paused");
        }
        QueueCommand::Resume { queue } => {
            store.resume_queue(&queue).await?;
            println!("{queue} resumed");
        }
        QueueCommand::Purge { queue } => println!(
            "{} waiting job(s) deleted from {queue}",
            store.purge_queue(&queue).await?
        ),
    }
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}
