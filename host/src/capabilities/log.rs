//! `log`: lines into the job's captured log, and the panic report that turns
//! a guest abort into a readable trap message.

use super::bindings::taskhost::plugin::log::{Host, Level};
use crate::runtime::JobState;

impl Host for JobState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.charge_host_call()?;
        let level = match level {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        self.capture().line(level, &message);
        Ok(())
    }

    async fn report_panic(&mut self, message: String) -> wasmtime::Result<()> {
        // The first report is free: it is the last thing a dying guest
        // does, and it must get through even when the budget is spent.
        // Any further one is charged, so a guest cannot call it for free
        // in a loop.
        if self.has_panic() {
            self.charge_host_call()?;
        }
        self.capture().line("PANIC", &message);
        self.set_panic(message);
        Ok(())
    }
}
