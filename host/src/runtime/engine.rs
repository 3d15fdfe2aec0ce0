//! The one `wasmtime::Engine` of a host: pooling allocator, fuel, epochs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{
    Config as WasmConfig, Engine, InstanceAllocationStrategy, OptLevel as CraneliftOpt,
    PoolingAllocationConfig,
};

use crate::config::OptLevel;
use wasmtime::Enabled;

/// How often the epoch advances. Deadlines are checked (and CPU-bound guests
/// yield to the async executor) once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// What the engine is built from. Everything that changes compiled code is
/// covered by `Engine::precompile_compatibility_hash`, which keys the cache.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Job instances that may exist at once.
    pub pool_size: u32,
    /// The largest memory cap of any handler (the pool reserves this much).
    pub max_memory_bytes: u64,
    pub opt_level: OptLevel,
}

/// The most core module instances one plugin instance may hold. A Rust
/// wasip2 component instantiates 3, a componentize-js one 4, a
/// componentize-py one 14 (the interpreter, libc and each native library
/// are modules of their own); the rest is room for Python packages with
/// native code.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 24;

/// Builds the engine. The pool holds `pool_size` job instances of any
/// plugin: core instance slots for the largest component (they are
/// address space and a little bookkeeping, not resident memory), one or
/// two memories and a few tables each. Sized for an average Rust plugin
/// instead, a pool full of Python jobs ran out of core instances and
/// failed jobs it had admitted.
pub fn build_engine(settings: &EngineSettings) -> wasmtime::Result<Engine> {
    let n = settings.pool_size.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n * MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(n * 2)
        .total_tables(n * 4)
        .total_stacks(n)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_memory_size(settings.max_memory_bytes.max(1 << 20) as usize)
        // Keep the pages of each slot resident: a fresh job then reuses
        // them instead of faulting zeroed pages in again.
        .linear_memory_keep_resident(4 << 20)
        // With PAGEMAP_SCAN (Linux 6.7+) only the pages a job dirtied are
        // reset, and they stay resident: ~13 µs per `hello` job instead of
        // ~40 µs with madvise and page faults (see `taskhost bench runtime`).
        .pagemap_scan(Enabled::Auto)
        .table_keep_resident(64 << 10);

    let mut config = WasmConfig::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_opt_level(match settings.opt_level {
            OptLevel::Speed => CraneliftOpt::Speed,
            OptLevel::SpeedAndSize => CraneliftOpt::SpeedAndSize,
            OptLevel::None => CraneliftOpt::None,
        })
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("taskhost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
