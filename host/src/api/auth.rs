//! Bearer tokens with scopes. The config holds only SHA-256 hashes of the
//! tokens; a request's token is hashed and looked up. With no tokens
//! configured the API is open, which the host allows only on loopback.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;
use crate::config::{ApiSettings, Scope};

/// The configured tokens.
pub struct Auth {
    tokens: HashMap<[u8; 32], (String, HashSet<Scope>)>,
}

impl Auth {
    /// Reads `[[api.tokens]]`; a hash that is not 64 hex digits is refused.
    pub fn from_settings(api: &ApiSettings) -> Result<Auth, String> {
        let mut tokens = HashMap::new();
        for t in &api.tokens {
            let bytes = hex::decode(t.sha256.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    format!(
                        "api token {:?}: sha256 must be 64 hex digits (see `taskhost token hash`)",
                        t.name
                    )
                })?;
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes);
            tokens.insert(key, (t.name.clone(), t.scopes.iter().copied().collect()));
        }
        Ok(Auth { tokens })
    }

    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks the request's bearer token for `scope`.
    fn check(&self, parts: &Parts, scope: Scope) -> Result<(), ApiError> {
        if self.is_open() {
            return Ok(());
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.check_token(
            header
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim),
            scope,
        )
    }

    /// Checks `token` (from a header or the dashboard's cookie) for `scope`.
    pub(super) fn check_token(&self, token: Option<&str>, scope: Scope) -> Result<(), ApiError> {
        if self.is_open() {
            return Ok(());
        }
        let Some(token) = token else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <token>`",
            ));
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let Some((name, scopes)) = self.tokens.get(&key) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown token",
            ));
        };
        if scopes.contains(&Scope::Admin) || scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("token {name:?} lacks the {} scope", scope_name(scope)),
            ))
        }
    }
}

/// The hex SHA-256 of a token, as `[[api.tokens]] sha256` wants it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Enqueue => "enqueue",
        Scope::Read => "read",
        Scope::Admin => "admin",
    }
}

/// A scope, as a type, so a handler's signature says what it needs.
pub trait NeedsScope {
    const SCOPE: Scope;
}

pub struct Read;
pub struct Enqueue;
pub struct Admin;

impl NeedsScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl NeedsScope for Enqueue {
    const SCOPE: Scope = Scope::Enqueue;
}
impl NeedsScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// Extractor: the request carries a token with scope `S`.
pub struct Authorized<S>(PhantomData<S>);

impl<S: NeedsScope + Send + Sync> FromRequestParts<ApiState> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        state.auth.check(parts, S::SCOPE)?;
        Ok(Authorized(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenSettings;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = axum::http::Request::builder();
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tokens_are_checked_by_hash_and_scope() {
        let api = ApiSettings {
            tokens: vec![
                TokenSettings {
                    name: "app".into(),
                    sha256: hash_token("s3cret"),
                    scopes: vec![Scope::Enqueue],
                },
                TokenSettings {
                    name: "ops".into(),
                    sha256: hash_token("r00t"),
                    scopes: vec![Scope::Admin],
                },
            ],
            ..ApiSettings::default()
        };
        let auth = Auth::from_settings(&api).unwrap();
        assert!(
            auth.check(&parts(Some("Bearer s3cret")), Scope::Enqueue)
                .is_ok()
        );
        assert_eq!(
            auth.check(&parts(Some("Bearer s3cret")), Scope::Read)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            auth.check(&parts(Some("Bearer nope")), Scope::Read)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            auth.check(&parts(None), Scope::Read).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert!(
            auth.check(&parts(Some("Bearer r00t")), Scope::Read).is_ok(),
            "admin includes read"
        );
    }

    #[test]
    fn a_malformed_hash_is_refused_by_token_name() {
        let api = ApiSettings {
            tokens: vec![TokenSettings {
                name: "app".into(),
                sha256: "xyz".into(),
                scopes: vec![],
            }],
            ..ApiSettings::default()
        };
        assert!(Auth::from_settings(&api).err().unwrap().contains("\"app\""));
    }
}
