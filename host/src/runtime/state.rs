//! What one job's store holds: a locked-down WASI context, its budgets, and
//! what the host learns while it runs (captured log, a panic message).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::capture::{Capture, CaptureStream};
use super::limits::Limits;
use crate::config::PluginGrants;
use crate::enqueue::Enqueuer;

/// Raised (as a trap) when a job spends its host-call budget.
#[derive(Debug, thiserror::Error)]
#[error("host call limit of {limit} reached")]
pub struct HostCallLimitExceeded {
    pub limit: u64,
}

/// Raised (as a trap) when a job's linear memory would grow past its cap.
#[derive(Debug, thiserror::Error)]
#[error("linear memory may not grow to {desired} bytes (cap {limit})")]
pub struct MemoryLimitExceeded {
    pub limit: u64,
    pub desired: u64,
}

/// Caps linear memory. Refusing a grow by trapping (rather than returning
/// -1 from `memory.grow`) gives a typed outcome instead of a bare
/// `unreachable` from the guest's allocator.
struct MemoryCap {
    limit: u64,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.limit,
                desired: desired as u64,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// What a job's host calls can reach beyond its own sandbox.
#[derive(Clone, Default)]
pub struct JobServices {
    /// Present when the host has a store: the `jobs` interface enqueues through it.
    pub enqueuer: Option<Arc<Enqueuer>>,
    /// What the config grants the job's plugin.
    pub grants: Arc<PluginGrants>,
    /// Pools and clients the capabilities share across jobs.
    pub shared: Arc<crate::capabilities::Shared>,
}

/// Who is running: the names that host calls put in their errors and spans.
#[derive(Debug, Clone)]
pub struct JobIdentity {
    pub job_id: String,
    pub plugin: Arc<str>,
    pub handler: String,
}

/// The data of one job's `Store`.
pub struct JobState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    capture: Capture,
    host_calls: u64,
    host_call_limit: u64,
    panic: Option<String>,
    identity: JobIdentity,
    services: JobServices,
    limits: Limits,
    /// Calls refused so far (only the first few reach the host log).
    denials: AtomicU64,
    /// Jobs enqueued through `jobs` so far.
    enqueued: u64,
}

/// How many refused calls of one job are logged in full; the rest are
/// counted and reported once when the job ends.
pub const DENIALS_LOGGED: u64 = 5;

impl JobState {
    /// A fresh state: no files, no environment, no arguments, no network and
    /// no name lookup. Clocks and randomness stay available.
    pub fn new(identity: JobIdentity, limits: &Limits, services: JobServices) -> JobState {
        let mut limits = limits.clone();
        if let Some(n) = services.grants.jobs_per_run {
            limits.enqueues = n;
        }
        let capture = Capture::new(limits.log_bytes as usize);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(CaptureStream(capture.clone()))
            .stderr(CaptureStream(capture.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        JobState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryCap {
                limit: limits.memory_bytes,
            },
            capture,
            host_calls: 0,
            host_call_limit: limits.host_calls,
            panic: None,
            identity,
            services,
            limits,
            denials: AtomicU64::new(0),
            enqueued: 0,
        }
    }

    /// Counts one host call; a trap once the budget is spent.
    pub fn charge_host_call(&mut self) -> wasmtime::Result<()> {
        if self.host_calls >= self.host_call_limit {
            return Err(wasmtime::Error::new(HostCallLimitExceeded {
                limit: self.host_call_limit,
            }));
        }
        self.host_calls += 1;
        Ok(())
    }

    pub fn host_calls(&self) -> u64 {
        self.host_calls
    }

    /// The limits this job runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts one refused call; returns how many there were before it.
    pub fn count_denial(&self) -> u64 {
        self.denials.fetch_add(1, Ordering::Relaxed)
    }

    /// How many calls of this job were refused.
    pub fn denials(&self) -> u64 {
        self.denials.load(Ordering::Relaxed)
    }

    /// Counts one job about to be enqueued through `jobs`; `false` once the
    /// run's budget (`[plugins.NAME] jobs_per_run`, else `[limits]
    /// max_enqueues`) is spent.
    pub fn charge_enqueue(&mut self) -> bool {
        self.charge_enqueues(1)
    }

    /// Counts `n` jobs about to be enqueued at once (a batch): all within
    /// the run's budget, or none counted and `false`.
    pub fn charge_enqueues(&mut self, n: u64) -> bool {
        if self.enqueued.saturating_add(n) > self.limits.enqueues {
            return false;
        }
        self.enqueued += n;
        true
    }

    pub fn capture(&self) -> &Capture {
        &self.capture
    }

    pub fn plugin(&self) -> &str {
        &self.identity.plugin
    }

    pub fn identity(&self) -> &JobIdentity {
        &self.identity
    }

    pub fn services(&self) -> &JobServices {
        &self.services
    }

    pub(crate) fn set_panic(&mut self, mut message: String) {
        super::text::clip_in_place(&mut message, self.limits.message_bytes as usize);
        self.panic = Some(message);
    }

    pub(crate) fn has_panic(&self) -> bool {
        self.panic.is_some()
    }

    pub(crate) fn take_panic(&mut self) -> Option<String> {
        self.panic.take()
    }

    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.memory
    }
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
