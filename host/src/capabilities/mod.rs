//! The host side of the WIT interfaces a plugin imports, one module per
//! interface. Deny by default: a call reaches a database, an HTTP host or a
//! chain only when the host config grants it to the calling plugin; until
//! then it answers [`HostError::Denied`] naming what was refused.
//!
//! Every call is charged to the job's host-call budget first
//! ([`crate::runtime::JobState::charge_host_call`]), so a plugin that floods
//! the host ends with `host-call-limit` rather than starving other jobs.

pub mod chain;
pub mod config;
pub mod db;
pub mod http;
mod jobs;
mod log;

use wasmtime::component::{HasSelf, Linker};

use crate::runtime::JobState;

/// Generated bindings of the `taskhost:plugin` world (`wit/plugin.wit`).
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use bindings::taskhost::plugin::types::HostError;

/// Host-side resources the capabilities share across jobs (connection
/// pools, HTTP clients, chain endpoints), built once from the config when
/// the runtime loads. Each capability module owns its own field.
#[derive(Default)]
pub struct Shared {
    /// The `db` capability's named databases and their connection pools.
    pub db: db::Databases,
    /// The `http` capability: grants, TLS settings and counters.
    pub http: http::HttpClient,
    /// Each plugin's settings and secrets (`config`, and redaction).
    pub config: config::PluginConfigs,
    /// The `chain` capability's named chains and their RPC clients.
    pub chain: chain::Chains,
}

impl Shared {
    pub fn from_config(config: &crate::config::Config) -> Result<Shared, String> {
        Ok(Shared {
            db: db::Databases::from_config(config)?,
            http: http::HttpClient::from_config(config)?,
            config: config::PluginConfigs::from_config(config, |var| std::env::var(var).ok())?,
            chain: chain::Chains::from_config(config)?,
        })
    }
}

/// Adds WASI (locked down per job by [`crate::runtime::JobState`]) and every
/// taskhost interface to the linker.
pub fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    bindings::Plugin::add_to_linker::<JobState, HasSelf<JobState>>(linker, |state| state)
}

/// The refusal every ungranted call gets: names the plugin and what it asked for.
pub(crate) fn denied(state: &JobState, what: impl std::fmt::Display) -> HostError {
    let message = format!("plugin {:?} is not granted {what}", state.plugin());
    note_denied(state, &message);
    HostError::Denied(plugin_text(state, &message))
}

/// Every refusal is counted in `/metrics` and written to the job's captured
/// log, wherever in the capabilities it happens. The first
/// [`DENIALS_LOGGED`](crate::runtime::DENIALS_LOGGED) of a job are also
/// logged by the host (with the job id), the rest only counted (the job's
/// end logs how many): the message carries the plugin's own argument, so
/// it is redacted of the plugin's secrets and cut to `[limits] max_message`
/// first, and a plugin cannot flood the host's log.
pub(crate) fn note_denied(state: &JobState, message: &str) {
    crate::metrics::global().denied(state.plugin());
    let message = plugin_text(state, message);
    if state.count_denial() < crate::runtime::DENIALS_LOGGED {
        tracing::warn!(job_id = %state.identity().job_id, plugin = %state.plugin(), "{message}");
    }
    state.capture().line("DENIED", &message);
}

/// Plugin-derived text made fit for a host log line or record: the
/// plugin's secrets redacted, then cut to `[limits] max_message`.
pub(crate) fn plugin_text(state: &JobState, text: &str) -> String {
    let config = state.services().shared.config.plugin(state.plugin());
    let redacted = config.redactor().redact(text);
    crate::runtime::clip(&redacted, state.limits().message_bytes as usize).into_owned()
}

impl bindings::taskhost::plugin::types::Host for JobState {}
