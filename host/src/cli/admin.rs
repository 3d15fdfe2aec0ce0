//! `taskhost dlq …` and `taskhost queue …`: operate on dead jobs and queues.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::jobs::parse_id;
use super::output::{dead_table, job_detail};
use crate::config::Config;
use serde_json::json;

use super::BadInput;
use super::remote::{Remote, encode, query};
use crate::job::{Job, JobStatus, Priority};
use crate::services::open_store;
use crate::stats::QueueStats;
use crate::store::Store;
use crate::store::SummaryPage;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead jobs, newest first.
    List {
        #[arg(long, short)]
        queue: Option<String>,
        /// 1–1000, as the API.
        #[arg(long, default_value_t = 50, value_parser = super::jobs::page_limit())]
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

/// Where the commands act: the local store, or a host's API.
enum Target<'a> {
    Local(Arc<dyn Store>),
    Remote(&'a Remote),
}

#[derive(serde::Deserialize)]
struct Count {
    count: u64,
}

impl Target<'_> {
    async fn local(config: &Config) -> anyhow::Result<Target<'static>> {
        Ok(Target::Local(
            open_store(config, Arc::new(crate::clock::SystemClock)).await?,
        ))
    }

    async fn dlq_list(&self, queue: Option<String>, limit: u32) -> anyhow::Result<SummaryPage> {
        match self {
            Target::Local(store) => Ok(store.dlq_list(queue.as_deref(), None, limit).await?.into()),
            Target::Remote(r) => {
                r.get(&format!(
                    "/api/v1/dlq{}",
                    query(&[("queue", queue), ("limit", Some(limit.to_string()))])
                ))
                .await
            }
        }
    }

    /// A dead job; another status is an error naming it.
    async fn dead_job(&self, id: &str) -> anyhow::Result<Job> {
        let id = parse_id(id)?;
        let job = match self {
            Target::Local(store) => store.get(id).await?,
            Target::Remote(r) => r.get(&format!("/api/v1/dlq/{id}")).await?,
        };
        if job.status != JobStatus::Dead {
            return Err(BadInput(format!("job {id} is {}, not dead", job.status.as_str())).into());
        }
        Ok(job)
    }

    async fn dlq_retry(&self, id: &str) -> anyhow::Result<()> {
        let id = parse_id(id)?;
        match self {
            Target::Local(store) => Ok(store.dlq_retry(id).await?),
            Target::Remote(r) => r
                .post::<serde_json::Value>(&format!("/api/v1/dlq/{id}/retry"), &json!({}))
                .await
                .map(drop),
        }
    }

    async fn dlq_retry_all(&self, queue: Option<String>) -> anyhow::Result<u64> {
        match self {
            Target::Local(store) => Ok(store.dlq_retry_all(queue.as_deref()).await?),
            Target::Remote(r) => Ok(r
                .post::<Count>(
                    &format!("/api/v1/dlq/retry-all{}", query(&[("queue", queue)])),
                    &json!({}),
                )
                .await?
                .count),
        }
    }

    async fn dlq_purge(&self, queue: Option<String>) -> anyhow::Result<u64> {
        match self {
            Target::Local(store) => Ok(store.dlq_purge(queue.as_deref()).await?),
            Target::Remote(r) => Ok(r
                .delete::<Count>(&format!("/api/v1/dlq{}", query(&[("queue", queue)])))
                .await?
                .count),
        }
    }

    async fn queue_stats(&self) -> anyhow::Result<Vec<QueueStats>> {
        match self {
            Target::Local(store) => {
                Ok(crate::stats::queue_stats(store.as_ref(), chrono::Utc::now()).await?)
            }
            Target::Remote(r) => r.get("/api/v1/queues").await,
        }
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> anyhow::Result<()> {
        match self {
            Target::Local(store) if paused => {
                let now = chrono::Utc::now();
                if let Some(why) = crate::stats::unknown_queue(store.as_ref(), now, queue).await? {
                    return Err(BadInput(why).into());
                }
                Ok(store.pause_queue(queue).await?)
            }
            Target::Local(store) => Ok(store.resume_queue(queue).await?),
            Target::Remote(r) => {
                let verb = if paused { "pause" } else { "resume" };
                r.post::<serde_json::Value>(
                    &format!("/api/v1/queues/{}/{verb}", encode(queue)),
                    &json!({}),
                )
                .await
                .map(drop)
            }
        }
    }

    async fn purge_queue(&self, queue: &str) -> anyhow::Result<u64> {
        match self {
            Target::Local(store) => Ok(store.purge_queue(queue).await?),
            Target::Remote(r) => Ok(r
                .delete::<Count>(&format!("/api/v1/queues/{}", encode(queue)))
                .await?
                .count),
        }
    }

    async fn close(self) -> anyhow::Result<()> {
        if let Target::Local(store) = self {
            store.close().await?;
        }
        Ok(())
    }
}

pub async fn dlq(config: Arc<Config>, cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    dlq_on(Target::local(&config).await?, cmd).await
}

pub async fn dlq_remote(remote: &Remote, cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    dlq_on(Target::Remote(remote), cmd).await
}

async fn dlq_on(target: Target<'_>, cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DlqCommand::List { queue, limit, json } => {
            let page = target.dlq_list(queue, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", dead_table(&page.jobs));
            }
        }
        DlqCommand::Show { id, json } => {
            let job = target.dead_job(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print!("{}", job_detail(&job));
            }
        }
        DlqCommand::Retry { id: Some(id), .. } => {
            target.dlq_retry(&id).await?;
            println!("{id} queued again");
        }
        DlqCommand::Retry {
            id: None,
            all: true,
            queue,
        } => {
            println!("{} job(s) queued again", target.dlq_retry_all(queue).await?);
        }
        DlqCommand::Retry {
            id: None,
            all: false,
            ..
        } => {
            return Err(BadInput("give a job id or --all".into()).into());
        }
        DlqCommand::Purge { queue } => {
            println!("{} dead job(s) deleted", target.dlq_purge(queue).await?)
        }
    }
    target.close().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn queue(config: Arc<Config>, cmd: QueueCommand) -> anyhow::Result<ExitCode> {
    queue_on(Target::local(&config).await?, cmd).await
}

pub async fn queue_remote(remote: &Remote, cmd: QueueCommand) -> anyhow::Result<ExitCode> {
    queue_on(Target::Remote(remote), cmd).await
}

async fn queue_on(target: Target<'_>, cmd: QueueCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        QueueCommand::Stats { json } => {
            let stats = target.queue_stats().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", queue_table(&stats));
            }
        }
        QueueCommand::Pause { queue } => {
            target.set_paused(&queue, true).await?;
            println!("{queue} paused");
        }
        QueueCommand::Resume { queue } => {
            target.set_paused(&queue, false).await?;
            println!("{queue} resumed");
        }
        QueueCommand::Purge { queue } => {
            println!(
                "{} waiting job(s) deleted from {queue}",
                target.purge_queue(&queue).await?
            )
        }
    }
    target.close().await?;
    Ok(ExitCode::SUCCESS)
}

fn queue_table(stats: &[QueueStats]) -> String {
    let mut out = format!(
        "{:<16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}  {:<10} STATE\n",
        "QUEUE", "CRIT", "HIGH", "NORMAL", "LOW", "SCHEDULED", "RUNNING", "DEAD", "TOTAL", "HOSTS"
    );
    for q in stats {
        let p = |pr: Priority| q.pending.get(pr.as_str()).copied().unwrap_or(0);
        out.push_str(&format!(
            "{:<16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}  {:<10} {}\n",
            q.name,
            p(Priority::Critical),
            p(Priority::High),
            p(Priority::Normal),
            p(Priority::Low),
            q.scheduled,
            q.running,
            q.dead,
            q.total,
            match q.hosts {
                0 => "no workers".to_string(),
                n => n.to_string(),
            },
            if q.paused { "paused" } else { "active" }
        ));
    }
    out
}
