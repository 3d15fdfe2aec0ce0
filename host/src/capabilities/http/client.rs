//! One outbound exchange: resolve the host ourselves, check every address,
//! connect to a checked address (no second lookup, so no DNS rebinding),
//! speak HTTP/1.1 (over TLS for `https`), follow redirects whose targets
//! are granted too, and read the body up to the cap.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming as IncomingBody;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use url::Url;

use super::address;
use super::grants::{Access, Grants, Origin, Scheme};

/// Why an exchange did not produce a response. Messages name the origin,
/// never the full URL (its path or query may carry a secret); they are
/// redacted once more before they leave the capability anyway.
#[derive(Debug)]
pub(super) enum Failure {
    /// `origin` is not granted, or resolves to an address it may not reach (`why`).
    Denied {
        origin: Origin,
        why: Option<String>,
    },
    Invalid(String),
    Failed(String),
}

/// A request ready to go: secrets substituted, names and values checked.
pub(super) struct Outgoing {
    pub method: Method,
    pub url: Url,
    /// Name, value, and whether the value carries a secret.
    pub headers: Vec<(HeaderName, HeaderValue, bool)>,
    pub body: Option<Bytes>,
}

pub(super) struct Limits {
    pub max_response: u64,
    pub max_redirects: u32,
}

/// What came back.
pub(super) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Runs `out` (whose origin the caller has checked: `access`) to its final
/// response.
pub(super) async fn execute(
    tls: &TlsConnector,
    grants: &Grants,
    limits: &Limits,
    mut out: Outgoing,
    mut access: Access,
) -> Result<Answer, Failure> {
    let mut redirects = 0;
    loop {
        let origin = Origin::of(&out.url).map_err(Failure::Invalid)?;
        let addrs = resolve(&origin, access).await?;
        let (response, _connection) = exchange(tls, &origin, &addrs, &out).await?;
        let status = response.status();
        let location = response.headers().get(header::LOCATION).cloned();
        let follow = limits.max_redirects > 0
            && matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
            && location.is_some();
        if !follow {
            return read_answer(&origin, response, limits.max_response).await;
        }
        if redirects == limits.max_redirects {
            return Err(Failure::Failed(format!(
                "{} {origin}: more than {} redirects",
                out.method, limits.max_redirects
            )));
        }
        redirects += 1;
        let location = location.expect("checked above");
        let next = location
            .to_str()
            .ok()
            .and_then(|l| out.url.join(l).ok())
            .ok_or_else(|| {
                Failure::Failed(format!("{origin} redirected to an unreadable location"))
            })?;
        let next_origin = Origin::of(&next).map_err(|why| {
            Failure::Failed(format!("{origin} redirected to an unusable URL: {why}"))
        })?;
        access = grants.check(&next_origin).ok_or_else(|| Failure::Denied {
            origin: next_origin.clone(),
            why: Some(format!("a redirect from {origin}")),
        })?;
        out = redirected(out, next, status, next_origin != origin);
    }
}

/// The request to send to a redirect's target: 303 (and 301/302 after a
/// POST) turn into a body-less GET; leaving the origin drops credentials
/// and every header that carries a secret.
fn redirected(mut out: Outgoing, url: Url, status: StatusCode, cross_origin: bool) -> Outgoing {
    let to_get = match status.as_u16() {
        303 => out.method != Method::HEAD,
        301 | 302 => out.method == Method::POST,
        _ => false,
    };
    if to_get {
        out.method = Method::GET;
        out.body = None;
        out.headers.retain(|(n, _, _)| {
            n != header::CONTENT_TYPE
                && n != header::CONTENT_LENGTH
                && n != header::CONTENT_ENCODING
        });
    }
    if cross_origin {
        out.headers.retain(|(n, _, secret)| {
            !secret
                && n != header::AUTHORIZATION
                && n != header::COOKIE
                && n != header::PROXY_AUTHORIZATION
        });
    }
    out.url = url;
    out
}

/// The addresses `origin` may be reached at: all of them for an exact
/// grant, the public ones otherwise (denied when there are none).
async fn resolve(origin: &Origin, access: Access) -> Result<Vec<SocketAddr>, Failure> {
    let host = origin.bare_host();
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, origin.port)],
        Err(_) => tokio::net::lookup_host((host, origin.port))
            .await
            .map_err(|e| Failure::Failed(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    if access == Access::Exact {
        return Ok(addrs);
    }
    let (public, restricted): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .into_iter()
        .partition(|a| address::restricted(a.ip()).is_none());
    match (public.is_empty(), restricted.first()) {
        (true, Some(addr)) => Err(Failure::Denied {
            origin: origin.clone(),
            why: Some(format!(
                "{} is a {} address; only a host granted by its exact name may be",
                addr.ip(),
                address::restricted(addr.ip()).unwrap_or("restricted")
            )),
        }),
        (true, None) => Err(Failure::Failed(format!("{host} resolves to no address"))),
        (false, _) => Ok(public),
    }
}

/// Aborts the connection task when the exchange is over (or abandoned).
struct Connection(tokio::task::JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange(
    tls: &TlsConnector,
    origin: &Origin,
    addrs: &[SocketAddr],
    out: &Outgoing,
) -> Result<(hyper::Response<IncomingBody>, Connection), Failure> {
    let tcp = connect(origin, addrs).await?;
    match origin.scheme {
        Scheme::Http => send_on(tcp, origin, out).await,
        Scheme::Https => {
            let name = ServerName::try_from(origin.bare_host().to_string())
                .map_err(|e| Failure::Invalid(format!("{origin}: not a TLS server name: {e}")))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Failed(format!("TLS with {origin} failed: {e}")))?;
            send_on(stream, origin, out).await
        }
    }
}

/// Connects to the first address that answers.
async fn connect(origin: &Origin, addrs: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Failure::Failed(match last {
        Some(e) => format!("cannot connect to {origin}: {e}"),
        None => format!("cannot connect to {origin}: no address"),
    }))
}

async fn send_on<S>(
    io: S,
    origin: &Origin,
    out: &Outgoing,
) -> Result<(hyper::Response<IncomingBody>, Connection), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |what: &str, e: hyper::Error| {
        Failure::Failed(format!("{} {origin}: {what}: {}", out.method, chain(&e)))
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failed("handshake failed", e))?;
    let connection = Connection(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let target = &out.url[url::Position::BeforePath..url::Position::AfterQuery];
    let mut builder = hyper::Request::builder()
        .method(out.method.clone())
        .uri(target)
        .header(header::HOST, origin.authority());
    for (name, value, _) in &out.headers {
        if name != header::HOST {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .body(Full::new(out.body.clone().unwrap_or_default()))
        .map_err(|_| Failure::Invalid(format!("{origin}: the request path is not valid")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed("request failed", e))?;
    Ok((response, connection))
}

async fn read_answer(
    origin: &Origin,
    response: hyper::Response<IncomingBody>,
    cap: u64,
) -> Result<Answer, Failure> {
    let too_big = || {
        Failure::Failed(format!(
            "the response from {origin} is larger than the cap of {cap} bytes"
        ))
    };
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(too_big());
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failure::Failed(format!("reading the response from {origin}: {}", chain(&e)))
        })?;
        if let Ok(data) = frame.into_data() {
            if (bytes.len() + data.len()) as u64 > cap {
                return Err(too_big());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Answer {
        status,
        headers,
        body: bytes,
    })
}

/// An error and its causes, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// TLS for outbound HTTP/1.1 with the webpki roots; shared by the `http`
/// and `chain` capabilities.
pub(crate) fn tls_connector() -> TlsConnector {
    let roots = tokio_rustls::rustls::RootCertStore::from_iter(
        webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
    );
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut tls = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(std::sync::Arc::new(tls))
}
