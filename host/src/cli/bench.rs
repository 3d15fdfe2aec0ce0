//! `taskhost bench …`: print the figures the issues ask for.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Per-job sandbox cost of `hello`, and cold vs cached plugin loading.
    Runtime,
    /// `hello` in Rust, Python and JavaScript: per-job time, compiled size,
    /// memory per instance, jobs/s through the workers.
    Languages,
    /// Store operations per second (enqueue, lease+complete).
    Store(StoreArgs),
    /// End to end: enqueue rates, processed jobs/s, idle start latency.
    Workers(WorkersArgs),
    /// 10,000 schedules: idle CPU and fire lateness.
    Scheduler,
}

/// Which stores `bench workers` measures.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchStore {
    /// The embedded store only.
    Sqlite,
    /// The Redis store, printed next to the embedded store's figures.
    Redis,
}

#[derive(clap::Args)]
pub struct StoreArgs {
    /// The store to measure (`redis` also measures the embedded one).
    #[arg(long, value_enum, default_value = "sqlite")]
    store: BenchStore,
    /// The Redis to use; without it a throwaway `redis-server` is started.
    #[arg(long)]
    redis_url: Option<String>,
}

/// A Redis for a bench: `url`, or a throwaway server kept while the guard lives.
fn bench_redis(
    url: Option<String>,
) -> anyhow::Result<(
    String,
    Option<crate::store::redis::test_server::RedisServer>,
)> {
    match url {
        Some(url) => Ok((url, None)),
        None => {
            let server = crate::store::redis::test_server::RedisServer::start()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((server.url(), Some(server)))
        }
    }
}

#[derive(clap::Args)]
pub struct WorkersArgs {
    /// The store to measure (`redis` also measures the embedded one, for
    /// comparison on the same machine in the same run).
    #[arg(long, value_enum, default_value = "sqlite")]
    store: BenchStore,
    /// The Redis to use; without it a throwaway `redis-server` is started
    /// on 127.0.0.1 (no persistence). Keys go under a fresh prefix.
    #[arg(long)]
    redis_url: Option<String>,
    /// A tenth of the jobs (for a debug build or a quick look).
    #[arg(long)]
    quick: bool,
}

/// `bench workers`: the embedded store, then Redis when asked.
async fn workers(
    config: &Config,
    scratch: &std::path::Path,
    args: WorkersArgs,
) -> anyhow::Result<()> {
    use crate::bench::workers::{Size, run};
    let size = if args.quick { Size::QUICK } else { Size::FULL };
    let mut embedded = config.clone();
    embedded.store.backend = crate::config::StoreBackend::Sqlite;
    println!("embedded store (SQLite):");
    print!("{}", run(&embedded, scratch, size).await?);
    if args.store == BenchStore::Redis {
        let (url, server) = bench_redis(args.redis_url)?;
        let mut redis = config.clone();
        redis.store.backend = crate::config::StoreBackend::Redis;
        redis.store.url = Some(url.clone());
        println!("\nRedis store ({}):", crate::store::redis::redact(&url));
        print!("{}", run(&redis, scratch, size).await?);
        drop(server);
    }
    Ok(())
}

pub async fn execute(config: Arc<Config>, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir()?;
    match cmd {
        BenchCommand::Runtime => print!(
            "{}",
            crate::bench::runtime::run(&config, scratch.path()).await?
        ),
        BenchCommand::Languages => print!(
            "{}",
            crate::bench::languages::run(&config, scratch.path()).await?
        ),
        BenchCommand::Store(args) => {
            use crate::bench::store::{Target, run_on};
            print!("{}", run_on(scratch.path(), Target::Sqlite).await?);
            if args.store == BenchStore::Redis {
                let (url, server) = bench_redis(args.redis_url)?;
                print!("{}", run_on(scratch.path(), Target::Redis(url)).await?);
                drop(server);
            }
        }
        BenchCommand::Scheduler => {
            print!("{}", crate::bench::scheduler::run(scratch.path()).await?)
        }
        BenchCommand::Workers(args) => workers(&config, scratch.path(), args).await?,
    }
    Ok(ExitCode::SUCCESS)
}
