//! `rediss://`: what a client trusts and shows. Connections go through
//! rustls (never OpenSSL). A server's certificate must chain to the webpki
//! roots built in (the same on every machine), or, when a CA file is
//! given, to its certificates alone: a private CA, as managed Redis
//! services and self-hosted `tls-ca-cert-file` setups use. A client
//! certificate is sent to servers with `tls-auth-clients yes`.

use std::path::Path;

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::connect::redact;
use crate::store::{StoreError, StoreResult};

/// The TLS settings of a store: all empty for the webpki roots and no
/// client certificate.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// PEM CA certificates a server's certificate must chain to, instead
    /// of the built-in webpki roots.
    pub ca: Option<Vec<u8>>,
    /// A PEM client certificate (chain) and its PEM private key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }
}

/// Never prints the private key (nor the certificates, which say little).
impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field("client", &self.client.as_ref().map(|_| "<pem, key>"))
            .finish()
    }
}

/// Reads a PEM file of CA certificates (`[store] tls_ca`), checking that
/// it holds at least one, so a wrong file fails at start by its name
/// instead of as an untrusted server later. The error names the file.
pub fn read_tls_ca(path: &Path) -> Result<Vec<u8>, String> {
    read_certificates("tls_ca", path)
}

/// Reads a client certificate and its private key (`[store] tls_cert` and
/// `tls_key`), checking both parse. Errors name the file.
pub fn read_tls_client(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let chain = read_certificates("tls_cert", cert)?;
    let shown = key.display();
    let pem = std::fs::read(key).map_err(|e| format!("tls_key: cannot read {shown}: {e}"))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("tls_key: {shown} holds no PEM private key: {e}"))?;
    Ok((chain, pem))
}

fn read_certificates(setting: &str, path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("{setting}: cannot read {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{setting}: {shown} is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{setting}: {shown} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(pem)
}

/// The client for `url` with the TLS settings `tls` (which only a
/// `rediss://` URL may have).
pub(super) fn client(url: &str, tls: &RedisTls) -> StoreResult<redis::Client> {
    let shown = redact(url);
    if !tls.is_set() {
        return redis::Client::open(url)
            .map_err(|e| StoreError::backend(format!("cannot connect to Redis at {shown}: {e}")));
    }
    if !url.starts_with("rediss://") {
        return Err(StoreError::Invalid(format!(
            "TLS settings (a CA or client certificate) are set but Redis URL {shown} is not rediss://"
        )));
    }
    let certificates = redis::TlsCertificates {
        client_tls: tls
            .client
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.ca.clone(),
    };
    redis::Client::build_with_tls(url, certificates)
        .map_err(|e| StoreError::backend(format!("cannot connect to Redis at {shown}: {e}")))
}
