//! The budget of one job, resolved from the operator's `[handlers.NAME]`,
//! the plugin's own defaults and `[limits]`. Only the operator may raise a
//! budget above `[limits]`: a plugin's declared defaults may only lower it,
//! so a hostile plugin cannot declare itself unlimited.

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
    /// The largest result (JSON text) a run may return.
    pub result_bytes: u64,
    /// The longest message (error, panic, trap) kept from a run.
    pub message_bytes: u64,
    /// How many jobs one run may enqueue through `jobs`.
    pub enqueues: u64,
    /// The most attempts a `jobs` call may ask for.
    pub max_attempts: u32,
}

impl Limits {
    /// The limits of `handler`: its `[handlers.NAME]` entry wins outright;
    /// otherwise `[limits]`, lowered (never raised) by what the plugin
    /// declared. A plugin's fuel or timeout of 0 is ignored: it cannot mean
    /// "unlimited" or "stop at once" on a plugin's word.
    pub fn resolve(config: &Config, handler: &str, plugin: &HandlerDefaults) -> Limits {
        let empty = HandlerSettings::default();
        let own = config.handlers.get(handler).unwrap_or(&empty);
        let d = &config.limits;
        let fuel = match (own.fuel, plugin.fuel.filter(|&f| f != 0)) {
            (Some(f), _) => f,
            // The host's 0 means unlimited: any plugin value lowers it.
            (None, Some(p)) if d.fuel == 0 => p,
            (None, Some(p)) => p.min(d.fuel),
            (None, None) => d.fuel,
        };
        let timeout = own.timeout.unwrap_or_else(|| {
            plugin
                .timeout
                .filter(|t| !t.is_zero())
                .map_or(d.timeout, |t| t.min(d.timeout))
        });
        Limits {
            fuel: (fuel != 0).then_some(fuel),
            timeout,
            memory_bytes: own.memory.unwrap_or(d.memory),
            host_calls: own.host_calls.unwrap_or(d.host_calls),
            log_bytes: d.log,
            result_bytes: d.max_result,
            message_bytes: d.max_message,
            enqueues: d.max_enqueues,
            max_attempts: d.max_attempts.max(1),
        }
    }
}

/// The attempt budget a plugin may declare for its handler: at least 1, at
/// most `[limits] max_attempts` (only `[handlers.NAME]` or `[retry]` may set more).
pub fn plugin_max_attempts(config: &Config, declared: Option<u32>) -> Option<u32> {
    declared.map(|n| n.clamp(1, config.limits.max_attempts.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_plugin_may_lower_the_host_limits_but_never_raise_them() {
        let c = config("[limits]\nfuel = 1000\ntimeout = \"2s\"\nmax_attempts = 7\n");
        let greedy = HandlerDefaults {
            max_attempts: Some(u32::MAX),
            fuel: Some(0),
            timeout: Some(Duration::from_millis(1_000_000_000_000)),
        };
        let l = Limits::resolve(&c, "h", &greedy);
        assert_eq!(l.fuel, Some(1000));
        assert_eq!(l.timeout, Duration::from_secs(2));
        assert_eq!(plugin_max_attempts(&c, greedy.max_attempts), Some(7));
        assert_eq!(plugin_max_attempts(&c, Some(0)), Some(1));

        let modest = HandlerDefaults {
            max_attempts: Some(3),
            fuel: Some(10),
            timeout: Some(Duration::from_millis(5)),
        };
        let l = Limits::resolve(&c, "h", &modest);
        assert_eq!((l.fuel, l.timeout), (Some(10), Duration::from_millis(5)));
        assert_eq!(plugin_max_attempts(&c, modest.max_attempts), Some(3));
    }

    #[test]
    fn the_operator_may_raise_a_handler_above_the_host_limits() {
        let c = config(
            "[limits]\nfuel = 1000\ntimeout = \"2s\"\n[handlers.h]\nfuel = 0\ntimeout = \"1h\"\n",
        );
        let greedy = HandlerDefaults {
            max_attempts: None,
            fuel: Some(5),
            timeout: Some(Duration::from_millis(1)),
        };
        let l = Limits::resolve(&c, "h", &greedy);
        assert_eq!((l.fuel, l.timeout), (None, Duration::from_secs(3600)));
        // An unlimited host is lowered by any plugin value but a zero.
        let c = config("[limits]\nfuel = 0\n");
        assert_eq!(Limits::resolve(&c, "h", &greedy).fuel, Some(5));
        let zero = HandlerDefaults {
            fuel: Some(0),
            ..greedy
        };
        assert_eq!(Limits::resolve(&c, "h", &zero).fuel, None);
    }
}
