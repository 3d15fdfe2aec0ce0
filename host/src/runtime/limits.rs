//! The budget of one job, resolved from config, the plugin's own defaults
//! and the host defaults, in that order.

use std::time::Duration;

use crate::config::{Config, HandlerSettings};

use super::registry::HandlerDefaults;

/// What one run of a handler may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `None`: unlimited (the deadline still holds).
    pub fuel: Option<u64>,
    pub timeout: Duration,
    pub memory_bytes: u64,
    pub host_calls: u64,
    pub log_bytes: u64,
}

impl Limits {
    /// The limits of `handler`: its `[handlers.NAME]` entry first, then what
    /// the plugin declared, then `[limits]`.
    pub fn resolve(config: &Config, handler: &str, plugin: &HandlerDefaults) -> Limits {
        let empty = HandlerSettings::default();
        let own = config.handlers.get(handler).unwrap_or(&empty);
        let d = &config.limits;
        let fuel = own.fuel.or(plugin.fuel).unwrap_or(d.fuel);
        Limits {
            fuel: (fuel != 0).then_some(fuel),
            timeout: own.timeout.or(plugin.timeout).unwrap_or(d.timeout),
            memory_bytes: own.memory.unwrap_or(d.memory),
            host_calls: own.host_calls.unwrap_or(d.host_calls),
            log_bytes: d.log,
        }
    }
}
