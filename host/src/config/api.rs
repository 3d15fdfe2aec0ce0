//! `[api]`: the HTTP API's address, limits and tokens.

use serde::{Deserialize, Serialize};

use crate::units::serde_units;

/// The HTTP API of `taskhost serve`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    pub enabled: bool,
    /// Address to listen on. Anything but loopback needs at least one token.
    pub listen: String,
    /// The largest request body.
    #[serde(with = "serde_units::size")]
    pub max_body: u64,
    /// The largest plugin component `POST /api/v1/plugins` takes.
    #[serde(with = "serde_units::size")]
    pub max_plugin: u64,
    /// The most jobs one batch enqueue may carry.
    pub max_batch: usize,
    /// Whether `/metrics` needs a token with the `read` scope.
    pub metrics_auth: bool,
    /// Bearer tokens, stored as SHA-256 hashes (`taskhost token hash`).
    pub tokens: Vec<TokenSettings>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            max_body: 1 << 20,
            max_plugin: 32 << 20,
            max_batch: 1000,
            metrics_auth: false,
            tokens: Vec::new(),
        }
    }
}

/// One API token: its name (for logs), the hex SHA-256 of its secret, and
/// what it may do.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub name: String,
    pub sha256: String,
    pub scopes: Vec<Scope>,
}

/// What a token may do. `admin` includes `read` and `enqueue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Enqueue,
    Read,
    Admin,
}
