//! `config`: a plugin's settings and secrets, as `[plugins.NAME] settings`
//! and `secrets` declare them (environment overrides included; a secret
//! written `"env:VAR"` is read from the variable `VAR` when the host
//! starts). `get` answers either kind and `denied` for any other key.
//!
//! The same values drive redaction: every secret of a plugin is replaced by
//! `[redacted]` in what its jobs leave behind ([`PluginConfig::redact_report`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::HostError;
use super::bindings::taskhost::plugin::config::Host;
use super::http::secrets::{Redactor, SecretValues};
use crate::config::Config;
use crate::runtime::{JobState, Outcome};

/// Every plugin's settings and resolved secrets.
#[derive(Default)]
pub struct PluginConfigs {
    plugins: HashMap<String, Arc<PluginConfig>>,
}

/// One plugin's settings and secrets.
#[derive(Debug, Default)]
pub struct PluginConfig {
    plugin: String,
    settings: BTreeMap<String, String>,
    secrets: SecretValues,
    redactor: Redactor,
}

impl PluginConfigs {
    /// Resolves `env:VAR` secrets through `env`; a missing variable or a key
    /// declared both as a setting and a secret is an error naming it.
    pub fn from_config(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<PluginConfigs, String> {
        let mut plugins = HashMap::new();
        for (plugin, grants) in &config.plugins {
            let mut secrets = BTreeMap::new();
            for (key, value) in grants.secrets.iter() {
                let value = match value.strip_prefix("env:") {
                    Some(var) => env(var).ok_or_else(|| {
                        format!(
                            "plugins.{plugin}.secrets.{key}: environment variable {var} is not set"
                        )
                    })?,
                    None => value.clone(),
                };
                if grants.settings.contains_key(key) {
                    return Err(format!(
                        "plugins.{plugin}: {key:?} is declared both as a setting and as a secret"
                    ));
                }
                secrets.insert(key.clone(), value);
            }
            let redactor = Redactor::new(secrets.values().map(String::as_str));
            plugins.insert(
                plugin.clone(),
                Arc::new(PluginConfig {
                    plugin: plugin.clone(),
                    settings: grants.settings.clone(),
                    secrets: SecretValues(secrets),
                    redactor,
                }),
            );
        }
        Ok(PluginConfigs { plugins })
    }

    /// A plugin's configuration (empty when the config declares none).
    pub fn plugin(&self, name: &str) -> Arc<PluginConfig> {
        self.plugins.get(name).cloned().unwrap_or_else(|| {
            Arc::new(PluginConfig {
                plugin: name.to_string(),
                ..PluginConfig::default()
            })
        })
    }
}

impl PluginConfig {
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .get(key)
            .map(String::as_str)
            .or_else(|| self.secrets.get(key))
    }

    pub(crate) fn secrets(&self) -> &SecretValues {
        &self.secrets
    }

    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Removes this plugin's secrets from a finished job's outcome and log:
    /// whatever the plugin did with a value (logged it, returned it, put it
    /// in an error), the job record and the captured log never hold it.
    pub fn redact_report(&self, outcome: &mut Outcome, log: &mut String) {
        let r = &self.redactor;
        if r.is_empty() {
            return;
        }
        r.redact_in_place(log);
        match outcome {
            Outcome::Success { result } => r.redact_json(result),
            Outcome::Retryable { message, .. }
            | Outcome::Permanent { message }
            | Outcome::Trap { message, .. } => r.redact_in_place(message),
            Outcome::OutOfFuel { .. }
            | Outcome::DeadlineExceeded { .. }
            | Outcome::MemoryLimit { .. }
            | Outcome::HostCallLimit { .. }
            | Outcome::ResultTooLarge { .. } => {}
        }
    }
}

impl Host for JobState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<String, HostError>> {
        self.charge_host_call()?;
        let config = self.services().shared.config.plugin(self.plugin());
        Ok(match config.get(&key) {
            Some(value) => Ok(value.to_string()),
            None => Err(super::denied(self, format_args!("config key {key:?}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(toml: &str, env: &[(&str, &str)]) -> Result<PluginConfigs, String> {
        let config: Config = toml::from_str(toml).unwrap();
        PluginConfigs::from_config(&config, |var| {
            env.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn settings_and_secrets_are_read_env_references_resolved() {
        let c = configs(
            "[plugins.notify]\nsettings = { chat_id = 42, mode = \"html\" }\n\
             secrets = { token = \"env:TG_TOKEN\", key = \"literal\" }\n",
            &[("TG_TOKEN", "123:abc")],
        )
        .unwrap();
        let p = c.plugin("notify");
        assert_eq!(p.get("chat_id"), Some("42"));
        assert_eq!(p.get("mode"), Some("html"));
        assert_eq!(p.get("token"), Some("123:abc"));
        assert_eq!(p.get("key"), Some("literal"));
        assert_eq!(p.get("other"), None);
        assert_eq!(c.plugin("someone-else").get("chat_id"), None);
        assert_eq!(p.redactor().redact("t=123:abc"), "t=[redacted]");
    }

    #[test]
    fn a_missing_variable_or_a_doubly_declared_key_is_an_error() {
        let e = configs(
            "[plugins.notify]\nsecrets = { token = \"env:TG_TOKEN\" }\n",
            &[],
        )
        .err()
        .unwrap();
        assert!(
            e.contains("TG_TOKEN") && e.contains("plugins.notify.secrets.token"),
            "{e}"
        );
        let e = configs(
            "[plugins.p]\nsettings = { a = \"1\" }\nsecrets = { a = \"2\" }\n",
            &[],
        )
        .err()
        .unwrap();
        assert!(e.contains("both"), "{e}");
        assert!(!e.contains('2'), "{e}");
    }

    #[test]
    fn reports_are_redacted() {
        let c = configs("[plugins.p]\nsecrets = { t = \"s3cr3t\" }\n", &[]).unwrap();
        let p = c.plugin("p");
        let mut log = "[INFO] using s3cr3t\n".to_string();
        let mut outcome = Outcome::Retryable {
            message: "failed with s3cr3t".into(),
            retry_after: None,
        };
        p.redact_report(&mut outcome, &mut log);
        assert_eq!(log, "[INFO] using [redacted]\n");
        assert_eq!(outcome.message(), "failed with [redacted]");
    }
}
