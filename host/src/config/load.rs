//! Reading `taskhost.toml` and applying environment overrides.
//!
//! Any key can be set from the environment as `TASKHOST_<SECTION>__<KEY>`,
//! sections and keys joined by a double underscore, matched case-insensitively:
//! `TASKHOST_LIMITS__TIMEOUT=10s`, `TASKHOST_HOST__POOL_SIZE=64`. A value is
//! read as TOML when it parses as a TOML value (numbers, booleans) and as a
//! string otherwise.

use std::path::{Path, PathBuf};

use super::Config;

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "TASKHOST_";

/// Why the config could not be read; names the file (and line) or the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// Reads a config file and applies the environment overrides of `env`.
pub fn load(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    parse(&text, path, &base, env)
}

/// Parses config text; `path` only names the source in errors.
pub fn parse(
    text: &str,
    path: &Path,
    base_dir: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let parse_err = |e: toml::de::Error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    };
    // Deserialize the file alone first, so that its errors carry line numbers.
    let mut config: Config = toml::from_str(text).map_err(parse_err)?;
    let overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
        .collect();
    if !overrides.is_empty() {
        let mut table: toml::Table = toml::from_str(text).map_err(parse_err)?;
        for (var, value) in &overrides {
            apply_override(&mut table, var, value)?;
        }
        config = Config::deserialize_table(table).map_err(|message| ConfigError::Env {
            var: overrides
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            message,
        })?;
    }
    config.base_dir = base_dir.to_path_buf();
    check_retry(&config, text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(config)
}

/// Checks `[retry]` and each handler's own retry policy where they are
/// written, so an error names its section (and line) instead of whichever
/// handler happened to inherit the policy first.
fn check_retry(config: &Config, text: &str) -> Result<(), String> {
    use crate::worker::retry::{RetryError, RetryPolicy};
    let at = |section: &str, needles: &[String]| match line_of(text, needles) {
        Some(line) => format!("{section} (line {line})"),
        None => section.to_string(),
    };
    RetryPolicy::from_settings(&config.retry).map_err(|RetryError::Invalid(m)| {
        format!("{}: {m}", at("[retry]", &["[retry]".to_string()]))
    })?;
    for (name, handler) in &config.handlers {
        let Some(retry) = &handler.retry else {
            continue;
        };
        let mut settings = retry.clone();
        settings.max_attempts = settings.max_attempts.or(handler.max_attempts);
        RetryPolicy::from_settings(&settings).map_err(|RetryError::Invalid(m)| {
            let quoted = format!("[handlers.\"{name}\"");
            let bare = format!("[handlers.{name}");
            format!(
                "{}: {m}",
                at(&format!("[handlers.{name:?}] retry"), &[quoted, bare])
            )
        })?;
    }
    Ok(())
}

/// The 1-based line of the first section header starting with one of `needles`.
fn line_of(text: &str, needles: &[String]) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            needles.iter().any(|n| l.starts_with(n.as_str()))
        })
        .map(|i| i + 1)
}

impl Config {
    fn deserialize_table(table: toml::Table) -> Result<Config, String> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())
    }
}

fn apply_override(table: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let env_err = |message: &str| ConfigError::Env {
        var: var.to_string(),
        message: message.to_string(),
    };
    let keys: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|k| k.to_ascii_lowercase())
        .collect();
    if keys.iter().any(String::is_empty) {
        return Err(env_err("empty key segment"));
    }
    let parsed = parse_value(value);
    let (last, parents) = keys.split_last().expect("split yields at least one key");
    let mut node = table;
    for key in parents {
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| env_err(&format!("{key} is not a section")))?;
    }
    node.insert(last.clone(), parsed);
    Ok(())
}

fn parse_value(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("", Path::new("t.toml"), Path::new("/etc/th"), env(&[])).unwrap();
        assert_eq!(c.limits.timeout, Duration::from_secs(30));
        assert_eq!(c.plugin_dir(), PathBuf::from("/etc/th/plugins"));
    }

    #[test]
    fn environment_overrides_file_values() {
        let text = "[limits]\ntimeout = \"5s\"\nfuel = 10\n";
        let c = parse(
            text,
            Path::new("t.toml"),
            Path::new("."),
            env(&[
                ("TASKHOST_LIMITS__TIMEOUT", "250ms"),
                ("TASKHOST_HANDLERS__HELLO__FUEL", "77"),
            ]),
        )
        .unwrap();
        assert_eq!(c.limits.timeout, Duration::from_millis(250));
        assert_eq!(c.limits.fuel, 10);
        assert_eq!(c.handlers["hello"].fuel, Some(77));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse(
            "[limits]\nfule = 3\n",
            Path::new("bad.toml"),
            Path::new("."),
            env(&[]),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.toml"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("fule"), "{msg}");
    }

    #[test]
    fn bad_duration_is_refused_with_its_text() {
        let err = parse(
            "[limits]\ntimeout = \"soon\"\n",
            Path::new("c.toml"),
            Path::new("."),
            env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"soon\""), "{err}");
    }

    fn refused(text: &str) -> String {
        parse(text, Path::new("c.toml"), Path::new("."), env(&[]))
            .unwrap_err()
            .to_string()
    }

    /// Values that made a host useless are refused at load, naming the
    /// file, the line and what would work.
    #[test]
    fn values_that_make_a_host_useless_are_refused_with_their_line() {
        let cases = [
            ("[workers]\nlease = \"0s\"\n", "out of range"),
            ("[workers]\nlease = \"100000000d\"\n", "out of range"),
            ("[workers]\nqueues = {}\n", "no queues"),
            (
                "[workers]\nqueues = { default = 0 }\n",
                "runs 0 jobs at once",
            ),
            ("[limits]\ntimeout = 30\n", "a duration needs a unit"),
            ("[workers]\nmax_payload = \"1MB\"\n", "ambiguous size"),
            ("[workers]\nmax_payload = 1024\n", "a size needs a unit"),
            ("[store]\nretention = \"0s\"\n", "out of range"),
        ];
        for (text, expected) in cases {
            let msg = refused(text);
            assert!(msg.contains(expected), "{text:?}: {msg}");
            assert!(
                msg.contains("c.toml") && msg.contains("line 2"),
                "{text:?}: {msg}"
            );
        }
    }

    #[test]
    fn a_bad_retry_section_is_blamed_on_itself() {
        let msg = refused("[limits]\nfuel = 10\n\n[retry]\ndelays = []\n");
        assert!(msg.contains("[retry] (line 4)"), "{msg}");
        assert!(!msg.contains("handler"), "{msg}");
        let msg = refused("[handlers.\"mail.send\"]\nretry = { delays = [] }\n");
        assert!(
            msg.contains("[handlers.\"mail.send\"] retry (line 1)"),
            "{msg}"
        );
    }

    #[test]
    fn a_handler_rate_is_read_and_a_bad_one_is_refused_with_its_line() {
        let c = parse(
            "[handlers.send]\nrate = \"30/s\"\n",
            Path::new("c.toml"),
            Path::new("."),
            env(&[]),
        )
        .unwrap();
        assert_eq!(c.handlers["send"].rate.unwrap().to_string(), "30/s");
        let msg = refused("[handlers.send]\nfuel = 10\nrate = \"30 per second\"\n");
        assert!(
            msg.contains("\"30 per second\"") && msg.contains("line 3"),
            "{msg}"
        );
    }

    #[test]
    fn a_handler_concurrency_is_read_and_zero_is_refused_with_its_line() {
        let c = parse(
            "[handlers.send]\nconcurrency = 3\n",
            Path::new("c.toml"),
            Path::new("."),
            env(&[]),
        )
        .unwrap();
        assert_eq!(c.handlers["send"].concurrency.map(|n| n.get()), Some(3));
        let msg = refused("[handlers.send]\nfuel = 10\nconcurrency = 0\n");
        assert!(msg.contains("line 3") && msg.contains("nonzero"), "{msg}");
        let msg = refused("[handlers.send]\nconcurrency = -1\n");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn bad_environment_value_names_the_variable() {
        let err = parse(
            "",
            Path::new("c.toml"),
            Path::new("."),
            env(&[("TASKHOST_LIMITS__FUEL", "lots")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("TASKHOST_LIMITS__FUEL"), "{err}");
    }
}
