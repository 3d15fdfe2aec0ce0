//! Command-line parsing and dispatch. Exit codes: 0 success, 1 the job or
//! operation failed, 2 bad input (nothing was changed).

mod admin;
mod batch;
mod bench;
mod chain;
mod init;
mod jobs;
mod output;
mod plugin;
mod remote;
mod run;
mod schedule;
mod serve;
mod store;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "taskhost",
    version,
    about = "A job host whose handlers are sandboxed WebAssembly components"
)]
struct Cli {
    /// The config file; without it, `./taskhost.toml` if present, else defaults.
    #[arg(long, short, global = true, env = "TASKHOST_CONFIG")]
    config: Option<PathBuf>,
    /// Run the job, DLQ, queue and schedule commands against this host's
    /// HTTP API (`http://host:port`) instead of the local store; the token
    /// comes from `TASKHOST_TOKEN`.
    #[arg(long, global = true, env = "TASKHOST_URL")]
    url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workers until SIGINT/SIGTERM.
    Serve,
    /// Write a starter taskhost.toml (and an empty plugins/) into a folder.
    Init {
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Enqueue a job; prints its id.
    Enqueue(jobs::EnqueueArgs),
    /// Show one job with its attempt history.
    Job {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List jobs, newest first.
    Jobs(jobs::ListArgs),
    /// Cancel a job that has not started (pending, scheduled or retrying).
    Cancel {
        id: String,
        /// Also stop it if it is running (on any host sharing the store):
        /// the run is dropped within a second and the job ends cancelled.
        #[arg(long)]
        terminate: bool,
        #[arg(long)]
        json: bool,
    },
    /// Make a chain: jobs run one after another, each getting the previous
    /// one's result under `previous`; prints the chain's id.
    Chain(chain::ChainArgs),
    /// Batches: one handler over many items, with completion callbacks.
    #[command(subcommand)]
    Batch(batch::BatchCmd),
    /// Wait for a job to end; exit code 0 succeeded, 1 dead, 3 cancelled, 4 still running at the timeout.
    Wait {
        id: String,
        #[arg(long, default_value = "60s")]
        timeout: String,
    },
    /// API tokens: make one, or hash one for the config.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// The dead-letter queue.
    #[command(subcommand)]
    Dlq(admin::DlqCommand),
    /// Queue statistics and controls.
    #[command(subcommand)]
    Queue(admin::QueueCommand),
    /// Run one job now, in the sandbox, and print how it ended.
    Run(run::RunArgs),
    /// Inspect plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Measure the figures the benchmarks report (use a release build).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Work with schedule expressions.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Maintain the embedded store file: backup, compact, check.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

/// An error that is the user's input, not the system: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Serve));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let result = runtime.block_on(dispatch(cli));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            if is_bad_input(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes, each said once: a cause whose text its
/// parent's message already includes is not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let remote = cli
        .url
        .as_deref()
        .map(|u| remote::Remote::new(u, std::env::var("TASKHOST_TOKEN").ok()))
        .transpose()?;
    if let Some(remote) = remote {
        return match cli.command {
            Command::Enqueue(args) => jobs::enqueue_remote(&remote, args).await,
            Command::Job { id, json } => jobs::show_remote(&remote, id, json).await,
            Command::Cancel {
                id,
                terminate,
                json,
            } => jobs::cancel_remote(&remote, id, terminate, json).await,
            Command::Jobs(args) => jobs::list_remote(&remote, args).await,
            Command::Chain(args) => chain::execute_remote(&remote, args).await,
            Command::Batch(cmd) => batch::execute_remote(&remote, cmd).await,
            Command::Wait { id, timeout } => jobs::wait_remote(&remote, id, timeout).await,
            Command::Dlq(cmd) => admin::dlq_remote(&remote, cmd).await,
            Command::Queue(cmd) => admin::queue_remote(&remote, cmd).await,
            Command::Schedule(cmd) => schedule::execute_remote(&remote, cmd).await,
            Command::Plugin(cmd) => plugin::execute_remote(&remote, cmd).await,
            // TASKHOST_URL in the environment is for the commands that use
            // it; only an explicit --url on a command that cannot is an error.
            command if !url_given_on_command_line() => {
                run_local(cli.config.as_deref(), command).await
            }
            _ => Err(BadInput(
                "--url works with enqueue, job, jobs, cancel, chain, batch, wait, dlq, queue, schedule and plugin"
                    .into(),
            )
            .into()),
        };
    }
    run_local(cli.config.as_deref(), cli.command).await
}

fn url_given_on_command_line() -> bool {
    std::env::args().any(|a| a == "--url" || a.starts_with("--url="))
}

async fn run_local(config_path: Option<&Path>, command: Command) -> anyhow::Result<ExitCode> {
    let config = || load_config(config_path);
    match command {
        Command::Schedule(cmd) => schedule::execute(config, cmd).await,
        Command::Serve => serve::execute(config()?).await,
        Command::Token(cmd) => token::execute(cmd),
        Command::Init { dir } => init::execute(&dir),
        Command::Enqueue(args) => jobs::enqueue(config()?, args).await,
        Command::Job { id, json } => jobs::show(config()?, id, json).await,
        Command::Chain(args) => chain::execute(config()?, args).await,
        Command::Batch(cmd) => batch::execute(config()?, cmd).await,
        Command::Cancel {
            id,
            terminate,
            json,
        } => jobs::cancel(config()?, id, terminate, json).await,
        Command::Jobs(args) => jobs::list(config()?, args).await,
        Command::Wait { id, timeout } => jobs::wait(config()?, id, timeout).await,
        Command::Dlq(cmd) => admin::dlq(config()?, cmd).await,
        Command::Queue(cmd) => admin::queue(config()?, cmd).await,
        Command::Run(args) => run::execute(config()?, args).await,
        Command::Plugin(cmd) => plugin::execute(config()?, cmd).await,
        Command::Bench(cmd) => bench::execute(config()?, cmd).await,
        Command::Store(cmd) => store::execute(config()?, cmd).await,
    }
}

/// Whether an error is the user's to fix in what they gave us (arguments,
/// the config, the plugin files) — exit code 2 — rather than the system
/// failing (a damaged store, a full disk) — exit code 1.
fn is_bad_input(e: &anyhow::Error) -> bool {
    use crate::runtime::RuntimeError;
    use crate::services::ServicesError;
    if e.downcast_ref::<BadInput>().is_some() {
        return true;
    }
    let runtime = |r: &RuntimeError| !matches!(r, RuntimeError::Engine(_));
    match (
        e.downcast_ref::<ServicesError>(),
        e.downcast_ref::<RuntimeError>(),
    ) {
        (Some(ServicesError::Runtime(r)), _) | (None, Some(r)) => runtime(r),
        (Some(ServicesError::Retry(_) | ServicesError::DataDir { .. }), _) => true,
        _ => false,
    }
}

/// Logs go to stderr. `TASKHOST_LOG` filters them (`warn`, `info`,
/// `taskhost::jobs=info`, …); by default a serving host tells each job's
/// lifecycle (`info`) and one-shot commands only warnings.
/// `TASKHOST_LOG_FORMAT=json` writes one JSON object per line; colours only
/// on a terminal.
fn init_logging(serving: bool) {
    use std::io::IsTerminal;
    let default = if serving {
        "warn,taskhost=info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TASKHOST_LOG")
        .unwrap_or_else(|_| default.into());
    let json = std::env::var("TASKHOST_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Reads the config (with environment overrides), or the defaults when no
/// file is named and `./taskhost.toml` does not exist.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Arc<Config>> {
    let default = Path::new("taskhost.toml");
    let path = match path {
        Some(p) => p,
        None if default.is_file() => default,
        None => {
            let mut config = crate::config::parse("", default, Path::new("."), std::env::vars())?;
            config.base_dir = std::env::current_dir().context("reading the current folder")?;
            // Say so: a host on defaults in the wrong folder finds no
            // plugins and makes a store where nobody looks.
            eprintln!(
                "taskhost: no config file (--config, TASKHOST_CONFIG or ./taskhost.toml); \
                 using the defaults: plugins from {}, store {}",
                config.plugin_dir().display(),
                config.store_path().display()
            );
            return Ok(Arc::new(config));
        }
    };
    let config =
        crate::config::load(path, std::env::vars()).map_err(|e| BadInput(e.to_string()))?;
    Ok(Arc::new(config))
}
