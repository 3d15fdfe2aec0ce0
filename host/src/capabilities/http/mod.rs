//! `http`: outbound requests to the origins `[plugins.NAME] http = [...]`
//! grants (see [`grants`]), with `{secret:NAME}` references filled in by the
//! host (see [`secrets`]), `{hmac-sha256:NAME}` signatures computed by the
//! host (see [`signing`]), and loopback / private addresses refused unless
//! granted by exact name (see [`address`]). Every call is charged to the
//! job's host-call budget; every refusal is a typed `denied` naming the
//! origin, logged (to `tracing` and the job's log) and counted.

mod address;
pub(crate) mod client;
mod grants;
pub(crate) mod secrets;
mod signing;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use hyper::header::{HeaderName, HeaderValue};
use tokio_rustls::TlsConnector;
use url::Url;

use super::HostError;
use super::bindings::taskhost::plugin::http::{Host, Request, Response};
use super::config::PluginConfig;
use crate::config::{Config, HttpSettings};
use crate::runtime::JobState;
use client::{Failure, Outgoing};
use grants::{Grants, Origin};

/// What the `http` capability shares across jobs: settings, each plugin's
/// parsed grants, the TLS configuration and the counters.
pub struct HttpClient {
    settings: HttpSettings,
    grants: HashMap<String, Arc<Grants>>,
    tls: TlsConnector,
    counts: Mutex<BTreeMap<String, HttpCounts>>,
}

/// Outbound requests of one plugin, by how they ended (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HttpCounts {
    /// Responses received (any status).
    pub completed: u64,
    pub denied: u64,
    pub invalid: u64,
    pub failed: u64,
    pub timed_out: u64,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(HttpSettings::default(), HashMap::new())
    }
}

impl HttpClient {
    fn new(settings: HttpSettings, grants: HashMap<String, Arc<Grants>>) -> HttpClient {
        HttpClient {
            settings,
            grants,
            tls: client::tls_connector(),
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Parses every plugin's grants; the error names the plugin and the entry.
    pub fn from_config(config: &Config) -> Result<HttpClient, String> {
        let mut grants = HashMap::new();
        for (plugin, g) in &config.plugins {
            let parsed =
                Grants::parse(&g.http).map_err(|e| format!("plugins.{plugin}.http: grant {e}"))?;
            grants.insert(plugin.clone(), Arc::new(parsed));
        }
        Ok(HttpClient::new(config.http.clone(), grants))
    }

    /// Requests so far, per plugin.
    pub fn counts(&self) -> BTreeMap<String, HttpCounts> {
        self.counts.lock().expect("http counts lock").clone()
    }

    fn count(&self, plugin: &str, f: impl FnOnce(&mut HttpCounts)) {
        let mut counts = self.counts.lock().expect("http counts lock");
        f(counts.entry(plugin.to_string()).or_default());
    }

    /// Sends one request for `plugin`. Every error text is already redacted.
    pub(crate) async fn send(
        &self,
        plugin: &str,
        config: &PluginConfig,
        request: Request,
    ) -> Result<Response, HostError> {
        let started = Instant::now();
        let method = request.method.clone();
        let result = self.try_send(config, request).await;
        let redactor = config.redactor();
        let result = result.map_err(|failure| match failure {
            Sent::Denied(what) => {
                self.count(plugin, |c| c.denied += 1);
                let message = redactor.redact(&format!(
                    "plugin {plugin:?} is not granted outbound HTTP to {what}"
                ));
                HostError::Denied(message)
            }
            Sent::UnknownSecret(name) => {
                self.count(plugin, |c| c.denied += 1);
                let message = format!("plugin {plugin:?} is not granted secret {name:?}");
                HostError::Denied(message)
            }
            Sent::Invalid(m) => {
                self.count(plugin, |c| c.invalid += 1);
                HostError::Invalid(redactor.redact(&m))
            }
            Sent::Failed(m) => {
                self.count(plugin, |c| c.failed += 1);
                HostError::Failed(redactor.redact(&m))
            }
            Sent::Timeout(m) => {
                self.count(plugin, |c| c.timed_out += 1);
                HostError::Timeout(redactor.redact(&m))
            }
        });
        let elapsed_ms = started.elapsed().as_millis() as u64;
        // The method and the error carry the plugin's text: cut (the error
        // is already redacted).
        let method = crate::runtime::clip(&method, 64);
        match &result {
            Ok(r) => {
                self.count(plugin, |c| c.completed += 1);
                tracing::debug!(plugin, %method, status = r.status, elapsed_ms, "outbound HTTP");
            }
            // A refusal is logged (rate-limited) by `note_denied`, not here.
            Err(HostError::Denied(_)) => {}
            Err(e) => {
                let error = format!("{e:?}");
                let error = crate::runtime::clip(&error, 4096);
                tracing::debug!(plugin, %method, %error, elapsed_ms, "outbound HTTP failed")
            }
        }
        result
    }

    async fn try_send(&self, config: &PluginConfig, request: Request) -> Result<Response, Sent> {
        let (origin_part, rest) = split_origin(&request.url)?;
        if secrets::mentions_secret(origin_part) {
            return Err(Sent::Invalid(
                "a secret may not stand in a URL's scheme, user or host".into(),
            ));
        }
        let template = Url::parse(origin_part)
            .map_err(|e| Sent::Invalid(format!("bad URL {origin_part:?}: {e}")))?;
        if !template.username().is_empty() || template.password().is_some() {
            return Err(Sent::Invalid(
                "credentials in a URL are not sent; use an Authorization header".into(),
            ));
        }
        let origin = Origin::of(&template).map_err(Sent::Invalid)?;
        let grants = self.grants_of(config);
        let access = grants
            .check(&origin)
            .ok_or_else(|| Sent::Denied(origin.to_string()))?;

        // The host is settled: now the secrets may go in.
        let secrets = config.secrets();
        let lookup = |name: &str| secrets.get(name);
        let mut rest = secrets::substitute(rest, lookup).map_err(|e| Sent::UnknownSecret(e.0))?;
        let body = match &request.body {
            Some(b) => Some(Bytes::from(
                secrets::substitute_bytes(b, lookup).map_err(|e| Sent::UnknownSecret(e.0))?,
            )),
            None => None,
        };
        let mut values = Vec::with_capacity(request.headers.len());
        let mut carries = Vec::with_capacity(request.headers.len());
        for (_, value) in &request.headers {
            carries.push(secrets::mentions_secret(value) || signing::mentions_signature(value));
            values.push(secrets::substitute(value, lookup).map_err(|e| Sent::UnknownSecret(e.0))?);
        }
        signing::sign(&mut rest, &mut values, body.as_deref(), lookup).map_err(|e| match e {
            signing::SignError::Unknown(e) => Sent::UnknownSecret(e.0),
            signing::SignError::Invalid(m) => Sent::Invalid(m),
        })?;
        let mut url = Url::parse(&format!("{origin_part}{rest}"))
            .map_err(|e| Sent::Invalid(format!("bad URL for {origin}: {e}")))?;
        url.set_fragment(None);
        if Origin::of(&url).ok().as_ref() != Some(&origin) {
            return Err(Sent::Invalid(format!(
                "the URL's path changed its origin from {origin}"
            )));
        }
        let method = Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Sent::Invalid(format!("bad method {:?}", request.method)))?;
        let mut headers = Vec::with_capacity(request.headers.len());
        for (((name, _), value), carries) in request.headers.iter().zip(values).zip(carries) {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Sent::Invalid(format!("bad header name {name:?}")))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| Sent::Invalid(format!("header {name:?} has a bad value")))?;
            headers.push((header, value, carries));
        }
        let timeout = request
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.settings.timeout);
        let limits = client::Limits {
            max_response: self.settings.max_response,
            max_redirects: self.settings.max_redirects,
        };
        let out = Outgoing {
            method: method.clone(),
            url,
            headers,
            body,
        };
        let exchange = client::execute(&self.tls, &grants, &limits, out, access);
        let answer = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Err(Sent::Timeout(format!(
                    "{method} {origin}: no complete response within {timeout:?}"
                )));
            }
            Ok(Err(Failure::Denied { origin, why })) => {
                return Err(Sent::Denied(match why {
                    Some(why) => format!("{origin} ({why})"),
                    None => origin.to_string(),
                }));
            }
            Ok(Err(Failure::Invalid(m))) => return Err(Sent::Invalid(m)),
            Ok(Err(Failure::Failed(m))) => return Err(Sent::Failed(m)),
            Ok(Ok(answer)) => answer,
        };
        Ok(Response {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }

    fn grants_of(&self, config: &PluginConfig) -> Arc<Grants> {
        self.grants
            .get(config.plugin())
            .cloned()
            .unwrap_or_default()
    }
}

/// How a request failed, before redaction.
enum Sent {
    /// Names the origin (and why, for an address or a redirect).
    Denied(String),
    UnknownSecret(String),
    Invalid(String),
    Failed(String),
    Timeout(String),
}

/// Splits `scheme://authority` from the rest (path, query, fragment), so
/// the origin is known before any secret is substituted.
fn split_origin(url: &str) -> Result<(&str, &str), Sent> {
    let Some(scheme_end) = url.find("://") else {
        return Err(Sent::Invalid(
            "the URL must be absolute: scheme://host[:port]/path".into(),
        ));
    };
    let after = scheme_end + 3;
    // The URL parser ends an http(s) authority at `\` too.
    let end = url[after..]
        .find(['/', '?', '#', '\\'])
        .map_or(url.len(), |i| after + i);
    Ok((&url[..end], &url[end..]))
}

impl Host for JobState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HostError>> {
        self.charge_host_call()?;
        let shared = self.services().shared.clone();
        let config = shared.config.plugin(self.plugin());
        let result = shared.http.send(self.plugin(), &config, request).await;
        if let Err(HostError::Denied(message)) = &result {
            super::note_denied(self, message);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_split_before_the_path() {
        fn ok(u: &str) -> (&str, &str) {
            match split_origin(u) {
                Ok(parts) => parts,
                Err(_) => panic!("{u} should split"),
            }
        }
        assert_eq!(
            ok("https://api.telegram.org/bot{secret:t}/sendMessage"),
            ("https://api.telegram.org", "/bot{secret:t}/sendMessage")
        );
        assert_eq!(
            ok("http://h:1?q={secret:k}"),
            ("http://h:1", "?q={secret:k}")
        );
        assert_eq!(ok("http://h"), ("http://h", ""));
        assert_eq!(ok("http://evil\\@good/"), ("http://evil", "\\@good/"));
        assert!(split_origin("/relative").is_err());
    }
}
