//! When a failed job runs again, and when it stops trying.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::RetrySettings;
use crate::units::serde_units;

/// A resolved retry policy: a handler's (shown by `/api/v1/handlers`), or a
/// job's own (given at enqueue, kept with the job in the store, so that
/// whichever host runs it retries it the same way). Its spans are written
/// as the config writes them (`"1m"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// No `deny_unknown_fields`: a policy stored by a newer host, with a field
// this one does not know, still reads.
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RetryPolicy {
    /// One retry per listed delay; `max_attempts` = delays + 1 unless set.
    Delays {
        max_attempts: u32,
        #[serde(with = "serde_units::durations")]
        delays: Vec<Duration>,
    },
    /// `base * factor^(n-1)`, capped at `max_delay`, ± `jitter` of itself.
    Exponential {
        max_attempts: u32,
        #[serde(with = "serde_units::duration")]
        base: Duration,
        factor: f64,
        #[serde(with = "serde_units::duration")]
        max_delay: Duration,
        jitter: f64,
    },
}

/// A retry setting that cannot work; names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryError {
    #[error("retry: {0}")]
    Invalid(String),
}

fn check_max_attempts(n: u32) -> Result<(), RetryError> {
    use crate::job::MAX_ATTEMPTS_LIMIT;
    match n {
        0 => Err(RetryError::Invalid(
            "max_attempts must be at least 1".into(),
        )),
        n if n > MAX_ATTEMPTS_LIMIT => Err(RetryError::Invalid(format!(
            "max_attempts {n} is over the limit of {MAX_ATTEMPTS_LIMIT}"
        ))),
        _ => Ok(()),
    }
}

impl RetryPolicy {
    /// The default policy: 5 attempts, 1 s doubling up to 1 h, 10 % jitter.
    pub fn default_policy() -> RetryPolicy {
        RetryPolicy::from_settings(&RetrySettings::default()).expect("the default policy is valid")
    }

    pub fn from_settings(s: &RetrySettings) -> Result<RetryPolicy, RetryError> {
        let invalid = |m: &str| Err(RetryError::Invalid(m.to_string()));
        if let Some(delays) = &s.delays {
            if s.base.is_some() || s.factor.is_some() || s.max_delay.is_some() {
                return invalid("give either `delays` or `base`/`factor`/`max_delay`, not both");
            }
            if delays.is_empty() {
                return invalid("`delays` is empty; use max_attempts = 1 for no retries");
            }
            let max_attempts = s.max_attempts.unwrap_or(delays.len() as u32 + 1);
            check_max_attempts(max_attempts)?;
            return Ok(RetryPolicy::Delays {
                max_attempts,
                delays: delays.clone(),
            });
        }
        let factor = s.factor.unwrap_or(2.0);
        let jitter = s.jitter.unwrap_or(0.1);
        if !(1.0..=100.0).contains(&factor) {
            return invalid("factor must be between 1 and 100");
        }
        if !(0.0..=1.0).contains(&jitter) {
            return invalid("jitter must be between 0 and 1");
        }
        let max_attempts = s.max_attempts.unwrap_or(crate::job::DEFAULT_MAX_ATTEMPTS);
        check_max_attempts(max_attempts)?;
        Ok(RetryPolicy::Exponential {
            max_attempts,
            base: s.base.unwrap_or(Duration::from_secs(1)),
            factor,
            max_delay: s.max_delay.unwrap_or(Duration::from_secs(3600)),
            jitter,
        })
    }

    pub fn max_attempts(&self) -> u32 {
        match self {
            RetryPolicy::Delays { max_attempts, .. }
            | RetryPolicy::Exponential { max_attempts, .. } => *max_attempts,
        }
    }

    /// The same delays with another attempt budget (an enqueue's own
    /// `max_attempts` beside its own policy).
    pub fn with_max_attempts(mut self, n: u32) -> RetryPolicy {
        match &mut self {
            RetryPolicy::Delays { max_attempts, .. }
            | RetryPolicy::Exponential { max_attempts, .. } => *max_attempts = n,
        }
        self
    }

    /// The settings that resolve to this policy: what an enqueue sends to
    /// give a job the same policy again.
    pub fn settings(&self) -> RetrySettings {
        match self {
            RetryPolicy::Delays {
                max_attempts,
                delays,
            } => RetrySettings {
                max_attempts: Some(*max_attempts),
                delays: Some(delays.clone()),
                ..RetrySettings::default()
            },
            RetryPolicy::Exponential {
                max_attempts,
                base,
                factor,
                max_delay,
                jitter,
            } => RetrySettings {
                max_attempts: Some(*max_attempts),
                delays: None,
                base: Some(*base),
                factor: Some(*factor),
                max_delay: Some(*max_delay),
                jitter: Some(*jitter),
            },
        }
    }

    /// The delay before the run after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        match self {
            RetryPolicy::Delays { delays, .. } => delays[(n as usize - 1).min(delays.len() - 1)],
            RetryPolicy::Exponential {
                base,
                factor,
                max_delay,
                jitter,
                ..
            } => {
                let raw = base.as_secs_f64() * factor.powi(n as i32 - 1);
                let capped = raw.min(max_delay.as_secs_f64());
                let spread = if *jitter > 0.0 {
                    rand::rng().random_range(-jitter..=*jitter)
                } else {
                    0.0
                };
                Duration::try_from_secs_f64((capped * (1.0 + spread)).max(0.0))
                    .unwrap_or(*max_delay)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_show_their_spans_as_the_config_writes_them() {
        let delays = RetryPolicy::Delays {
            max_attempts: 3,
            delays: mins(&[1, 2]),
        };
        assert_eq!(
            serde_json::to_value(&delays).unwrap(),
            serde_json::json!({"kind": "delays", "max_attempts": 3, "delays": ["1m", "2m"]})
        );
        let exp = serde_json::to_value(RetryPolicy::default_policy()).unwrap();
        assert_eq!(
            (exp["base"].as_str(), exp["max_delay"].as_str()),
            (Some("1s"), Some("1h"))
        );
    }

    #[test]
    fn policies_read_back_as_written() {
        let exp = RetryPolicy::Exponential {
            max_attempts: 4,
            base: Duration::from_millis(1500),
            factor: 3.0,
            max_delay: Duration::from_secs(5400),
            jitter: 0.2,
        };
        for p in [
            exp,
            RetryPolicy::Delays {
                max_attempts: 2,
                delays: mins(&[1, 90]),
            },
        ] {
            let text = serde_json::to_string(&p).unwrap();
            assert_eq!(
                serde_json::from_str::<RetryPolicy>(&text).unwrap(),
                p,
                "{text}"
            );
            assert_eq!(RetryPolicy::from_settings(&p.settings()).unwrap(), p);
        }
        let err = serde_json::from_str::<RetryPolicy>(
            r#"{"kind": "delays", "max_attempts": 2, "delays": ["soon"]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }

    fn mins(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_secs(m * 60)).collect()
    }

    #[test]
    fn the_payment_policy_retries_once_per_delay_then_stops() {
        let p = RetryPolicy::from_settings(&RetrySettings {
            delays: Some(mins(&[1, 2, 4, 8, 16])),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.max_attempts(), 6);
        let got: Vec<Duration> = (1..=5).map(|a| p.delay_after(a)).collect();
        assert_eq!(got, mins(&[1, 2, 4, 8, 16]));
    }

    #[test]
    fn more_attempts_than_delays_repeat_the_last_delay() {
        let p = RetryPolicy::from_settings(&RetrySettings {
            delays: Some(mins(&[1, 5])),
            max_attempts: Some(5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.delay_after(4), Duration::from_secs(300));
    }

    #[test]
    fn exponential_doubles_and_caps_without_jitter() {
        let p = RetryPolicy::from_settings(&RetrySettings {
            base: Some(Duration::from_secs(120)),
            max_delay: Some(Duration::from_secs(3600)),
            jitter: Some(0.0),
            max_attempts: Some(10),
            ..Default::default()
        })
        .unwrap();
        let got: Vec<u64> = (1..=7).map(|a| p.delay_after(a).as_secs()).collect();
        assert_eq!(got, vec![120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy::from_settings(&RetrySettings {
            base: Some(Duration::from_secs(100)),
            jitter: Some(0.2),
            ..Default::default()
        })
        .unwrap();
        for _ in 0..200 {
            let d = p.delay_after(1).as_secs_f64();
            assert!((80.0..=120.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn contradictory_or_empty_settings_are_refused() {
        let both = RetrySettings {
            delays: Some(mins(&[1])),
            base: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        assert!(
            RetryPolicy::from_settings(&both)
                .unwrap_err()
                .to_string()
                .contains("either")
        );
        let empty = RetrySettings {
            delays: Some(vec![]),
            ..Default::default()
        };
        assert!(RetryPolicy::from_settings(&empty).is_err());
        let zero = RetrySettings {
            max_attempts: Some(0),
            ..Default::default()
        };
        assert!(RetryPolicy::from_settings(&zero).is_err());
    }
}
