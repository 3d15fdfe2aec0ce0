//! The Lua scripts: every atomic state change is one script, run by
//! `EVALSHA` and loaded again when Redis answers `NOSCRIPT` (after a
//! restart or `SCRIPT FLUSH`), which [`redis::Script`] does.
//!
//! Each script is `common.lua` (key names, the clock, index upkeep)
//! followed by its own file.

use std::sync::LazyLock;

use redis::Script;

/// A script with the shared head in front, its body wrapped so the count
/// changes it summed are written once whatever branch it returns from.
fn with_common(body: &str) -> Script {
    Script::new(&format!(
        "{}\nlocal function main()\n{body}\nend\nlocal answer = main()\nflush_counts()\nreturn answer\n",
        include_str!("lua/common.lua")
    ))
}

macro_rules! scripts {
    ($($(#[$m:meta])* $name:ident = $file:literal;)+) => {$(
        $(#[$m])*
        pub(super) static $name: LazyLock<Script> =
            LazyLock::new(|| with_common(include_str!(concat!("lua/", $file))));
    )+};
}

scripts! {
    /// Enqueue a batch.
    ENQUEUE = "enqueue.lua";
    /// Reap, then lease.
    LEASE = "lease.lua";
    /// Renew, fail, release.
    HOLDER = "holder.lua";
    /// Complete a batch of runs.
    COMPLETE = "complete.lua";
    /// Reap expired leases.
    REAP = "reap.lua";
    /// Reads that need the store's time.
    READ = "read.lua";
    /// Pages of jobs.
    LIST = "list.lua";
    /// Cancel, DLQ, purge, pause.
    ADMIN = "admin.lua";
    /// One step of the retention sweep.
    SWEEP = "sweep.lua";
    /// Claim a schedule tick with its job.
    TICK = "tick.lua";
    /// Schedules, hosts, the sweep claim, the health probe.
    MISC = "misc.lua";
    /// Plugin releases: deploy and roll back.
    PLUGINS = "plugins.lua";
    /// Terminate requests and the question which were made.
    TERMINATE = "terminate.lua";
    /// Make and read chains.
    CHAIN = "chain.lua";
    /// Make, read and cancel batches.
    BATCH = "batch.lua";
}
