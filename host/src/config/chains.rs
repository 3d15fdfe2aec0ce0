//! `[chains.NAME]`: the EVM JSON-RPC endpoints the `chain` capability
//! reaches (the grants live in `[plugins.NAME] chains = ["NAME", …]`).
//!
//! ```toml
//! [chains.mainnet]
//! rpc = ["https://eth.example.com/v1/KEY", "https://backup.example.com"]
//! chain_id = 1
//! confirmations = 12
//! timeout = "10s"
//! retries = 3
//! log_window = 2000
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::serde_units;

/// One named chain: where its nodes are and how calls to them behave.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainSettings {
    /// The node URLs, tried in order when one fails transiently. One URL
    /// may be given as a plain string. Never logged whole: errors name the
    /// origin only (see [`redact_rpc_url`]).
    #[serde(
        deserialize_with = "one_or_many",
        serialize_with = "serialize_redacted"
    )]
    pub rpc: Vec<String>,
    /// The chain id the nodes must report (`eth_chainId`), checked on
    /// first use.
    pub chain_id: Option<u64>,
    /// How many confirmations this chain's deposits need (what
    /// `required-confirmations` answers).
    pub confirmations: u64,
    /// How long one JSON-RPC request may take.
    #[serde(with = "serde_units::duration")]
    pub timeout: Duration,
    /// How many times a transient failure (connection error, timeout, 5xx,
    /// 429) is retried before the call fails.
    pub retries: u32,
    /// The most blocks one `eth_getLogs` request covers.
    pub log_window: u64,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            rpc: Vec::new(),
            chain_id: None,
            confirmations: 12,
            timeout: Duration::from_secs(10),
            retries: 3,
            log_window: 2000,
        }
    }
}

impl std::fmt::Debug for ChainSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSettings")
            .field(
                "rpc",
                &self
                    .rpc
                    .iter()
                    .map(|u| redact_rpc_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("chain_id", &self.chain_id)
            .field("confirmations", &self.confirmations)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("log_window", &self.log_window)
            .finish()
    }
}

/// An RPC URL as errors and logs show it: scheme, host and port only.
/// Providers put API keys in the path, the query or the userinfo, so all
/// three are dropped (a non-empty path or query shows as `/…`).
pub fn redact_rpc_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".into();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = if tail.is_empty() || tail == "/" {
        tail
    } else {
        "/…"
    };
    format!("{scheme}://{host}{tail}")
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    })
}

fn serialize_redacted<S: Serializer>(urls: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(urls.iter().map(|u| redact_rpc_url(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_only_the_origin() {
        assert_eq!(
            redact_rpc_url("https://user:pw@eth.example.com/v3/SECRET?key=x"),
            "https://eth.example.com/…"
        );
        assert_eq!(
            redact_rpc_url("http://127.0.0.1:8545"),
            "http://127.0.0.1:8545"
        );
        assert_eq!(
            redact_rpc_url("http://127.0.0.1:8545/"),
            "http://127.0.0.1:8545/"
        );
    }

    #[test]
    fn rpc_takes_one_url_or_many() {
        let one: ChainSettings = toml::from_str("rpc = \"http://a\"").unwrap();
        assert_eq!(one.rpc, ["http://a"]);
        let many: ChainSettings = toml::from_str("rpc = [\"http://a\", \"http://b\"]").unwrap();
        assert_eq!(many.rpc, ["http://a", "http://b"]);
        assert_eq!(many.confirmations, 12);
        let debug = format!(
            "{:?}",
            toml::from_str::<ChainSettings>("rpc = \"https://x.io/KEY\"").unwrap()
        );
        assert!(!debug.contains("KEY"), "{debug}");
    }
}
