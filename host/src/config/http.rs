//! `[http]`: how the `http` capability talks to the hosts a plugin is
//! granted (the grants themselves live in `[plugins.NAME] http = [...]`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::serde_units;

/// Defaults and caps of outbound HTTP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// The whole exchange (connect, redirects, body) when the request sets
    /// no `timeout-ms` of its own.
    #[serde(with = "serde_units::duration")]
    pub timeout: Duration,
    /// The largest response body handed to a plugin, e.g. `"4MiB"`.
    #[serde(with = "serde_units::size")]
    pub max_response: u64,
    /// How many redirects are followed (each target must be granted too);
    /// `0` hands every 3xx to the plugin as it is.
    pub max_redirects: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(10),
            max_response: 4 << 20,
            max_redirects: 5,
        }
    }
}

/// A plugin's secrets, by name. Debug output and serialization show the
/// names only, so printing or exporting a config never reveals a value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretMap(
    #[serde(deserialize_with = "scalar_map::deserialize")] pub BTreeMap<String, String>,
);

impl SecretMap {
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

impl std::fmt::Debug for SecretMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, REDACTED)))
            .finish()
    }
}

impl Serialize for SecretMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.keys().map(|k| (k, REDACTED)))
    }
}

/// A map of names to text that also takes numbers and booleans (as an
/// environment override like `..._SETTINGS__CHAT_ID=42` gives them) and
/// keeps them as text.
pub mod scalar_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Real(f64),
        Bool(bool),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        BTreeMap::<String, Scalar>::deserialize(d)
            .map_err(|_| D::Error::custom("expected a table of names to text values"))
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Scalar::Text(t) => t,
                            Scalar::Integer(n) => n.to_string(),
                            Scalar::Real(x) => x.to_string(),
                            Scalar::Bool(b) => b.to_string(),
                        };
                        (k, v)
                    })
                    .collect()
            })
    }
}

/// What a secret's value is replaced with wherever text leaves the host.
pub const REDACTED: &str = "[redacted]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_or_serialize() {
        let m = SecretMap(BTreeMap::from([(
            "token".to_string(),
            "s3cr3t".to_string(),
        )]));
        assert!(!format!("{m:?}").contains("s3cr3t"));
        assert!(!serde_json::to_string(&m).unwrap().contains("s3cr3t"));
        assert!(format!("{m:?}").contains("token"));
    }

    #[test]
    fn defaults() {
        let s = HttpSettings::default();
        assert_eq!(
            (s.timeout.as_secs(), s.max_response, s.max_redirects),
            (10, 4 << 20, 5)
        );
    }
}
