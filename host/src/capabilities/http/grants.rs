//! Which origins a plugin may reach: `[plugins.NAME] http = [...]`, each
//! entry `scheme://host[:port]` in the form Spin uses.
//!
//! - scheme: `http`, `https`, or `*` for either;
//! - host: a name or an IP address (`[::1]` for IPv6), `*.example.com` for
//!   any subdomain of `example.com` (not `example.com` itself), or `*`;
//! - port: omitted for the scheme's default port, a number, or `*`.

use std::fmt;

use url::Url;

/// Where a request goes: scheme, host (lower-case; IPv6 in brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(text: &str) -> Option<Scheme> {
        match text {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl Origin {
    /// The origin of an absolute `http`/`https` URL.
    pub fn of(url: &Url) -> Result<Origin, String> {
        let scheme = Scheme::parse(url.scheme())
            .ok_or_else(|| format!("scheme {:?} is not http or https", url.scheme()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL has no host")?
            .to_ascii_lowercase();
        let port = url.port().unwrap_or(scheme.default_port());
        Ok(Origin { scheme, host, port })
    }

    /// The host without IPv6 brackets, as resolvers and TLS want it.
    pub fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }

    /// `host` or `host:port` when the port is not the scheme's default: the
    /// `Host` header's value.
    pub fn authority(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// One host, normalised as the URL parser normalises hosts.
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Subdomains(String),
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Default,
    Exact(u16),
    Any,
}

/// One parsed grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `None` for `*://`.
    scheme: Option<Scheme>,
    host: HostPattern,
    port: PortPattern,
}

/// How a grant matched an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The origin's host is named exactly: it may be a loopback or private address.
    Exact,
    /// Matched through `*`: public addresses only.
    Wildcard,
}

impl Grant {
    pub fn parse(text: &str) -> Result<Grant, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("expected scheme://host[:port]")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => None,
            s => Some(Scheme::parse(s).ok_or("the scheme must be http, https or *")?),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err("a grant names an origin only: no path, query or user".into());
        }
        // Split the port off, minding IPv6 brackets.
        let (host, port) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(p.parse().map_err(|_| format!("bad port {p:?}"))?),
        };
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            let normal = normalise_host(suffix)?;
            if normal.starts_with('[') || normal.parse::<std::net::Ipv4Addr>().is_ok() {
                return Err("a wildcard needs a domain name, not an IP address".into());
            }
            HostPattern::Subdomains(format!(".{normal}"))
        } else if host.contains('*') {
            return Err("`*` may only stand for the whole host or a leading `*.`".into());
        } else {
            HostPattern::Exact(normalise_host(host)?)
        };
        Ok(Grant { scheme, host, port })
    }

    /// Whether this grant lets a request reach `origin`, and how.
    pub fn matches(&self, origin: &Origin) -> Option<Access> {
        if self.scheme.is_some_and(|s| s != origin.scheme) {
            return None;
        }
        let port_ok = match self.port {
            PortPattern::Default => origin.port == origin.scheme.default_port(),
            PortPattern::Exact(p) => origin.port == p,
            PortPattern::Any => true,
        };
        if !port_ok {
            return None;
        }
        match &self.host {
            HostPattern::Exact(h) => (*h == origin.host).then_some(Access::Exact),
            HostPattern::Subdomains(suffix) => (origin.host.len() > suffix.len()
                && origin.host.ends_with(suffix.as_str()))
            .then_some(Access::Wildcard),
            HostPattern::Any => Some(Access::Wildcard),
        }
    }
}

/// The host as the URL parser would write it (lower-case, IDNA, canonical IPs).
fn normalise_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    url::Host::parse(host)
        .map(|h| h.to_string().to_ascii_lowercase())
        .map_err(|e| format!("bad host {host:?}: {e}"))
}

/// All of one plugin's grants.
#[derive(Debug, Clone, Default)]
pub struct Grants(Vec<Grant>);

impl Grants {
    /// Parses every entry; the error names the one that is wrong.
    pub fn parse(entries: &[String]) -> Result<Grants, String> {
        entries
            .iter()
            .map(|e| Grant::parse(e).map_err(|why| format!("{e:?}: {why}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Grants)
    }

    /// The best access any grant gives `origin` (an exact name beats a wildcard).
    pub fn check(&self, origin: &Origin) -> Option<Access> {
        let mut best = None;
        for g in &self.0 {
            match g.matches(origin) {
                Some(Access::Exact) => return Some(Access::Exact),
                Some(Access::Wildcard) => best = Some(Access::Wildcard),
                None => {}
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::of(&Url::parse(url).unwrap()).unwrap()
    }

    fn check(grants: &[&str], url: &str) -> Option<Access> {
        let g: Vec<String> = grants.iter().map(|s| s.to_string()).collect();
        Grants::parse(&g).unwrap().check(&origin(url))
    }

    #[test]
    fn exact_hosts_match_scheme_host_and_default_port() {
        let g = ["https://api.telegram.org"];
        assert_eq!(
            check(&g, "https://api.telegram.org/bot1/x"),
            Some(Access::Exact)
        );
        assert_eq!(
            check(&g, "https://API.Telegram.org:443/"),
            Some(Access::Exact)
        );
        assert_eq!(check(&g, "http://api.telegram.org/"), None);
        assert_eq!(check(&g, "https://api.telegram.org:8443/"), None);
        assert_eq!(check(&g, "https://telegram.org/"), None);
        assert_eq!(check(&g, "https://api.telegram.org.evil.test/"), None);
    }

    #[test]
    fn ports_and_schemes() {
        assert_eq!(
            check(&["http://127.0.0.1:8080"], "http://127.0.0.1:8080/a"),
            Some(Access::Exact)
        );
        assert_eq!(
            check(&["http://127.0.0.1:8080"], "http://127.0.0.1:8081/"),
            None
        );
        assert_eq!(
            check(&["http://127.0.0.1:*"], "http://127.0.0.1:1/"),
            Some(Access::Exact)
        );
        assert_eq!(
            check(&["*://example.com"], "https://example.com/"),
            Some(Access::Exact)
        );
        assert_eq!(
            check(&["*://example.com"], "http://example.com/"),
            Some(Access::Exact)
        );
        assert_eq!(check(&["*://example.com"], "http://example.com:443/"), None);
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        let g = ["https://*.example.com"];
        assert_eq!(check(&g, "https://a.example.com/"), Some(Access::Wildcard));
        assert_eq!(
            check(&g, "https://a.b.example.com/"),
            Some(Access::Wildcard)
        );
        assert_eq!(check(&g, "https://example.com/"), None);
        assert_eq!(check(&g, "https://badexample.com/"), None);
        assert_eq!(
            check(&["http://*:9000"], "http://localhost:9000/"),
            Some(Access::Wildcard)
        );
        // An exact grant wins over a wildcard one.
        assert_eq!(
            check(
                &["http://*:9000", "http://localhost:9000"],
                "http://localhost:9000/"
            ),
            Some(Access::Exact)
        );
    }

    #[test]
    fn ip_hosts_are_normalised() {
        assert_eq!(
            check(&["http://[::1]:80"], "http://[0:0::1]/"),
            Some(Access::Exact)
        );
        assert_eq!(check(&["http://127.0.0.1"], "http://127.0.0.2/"), None);
    }

    #[test]
    fn bad_grants_are_refused() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://user@example.com",
            "https://ex*ample.com",
            "https://*.127.0.0.1",
            "https://example.com:http",
            "https://",
        ] {
            assert!(Grant::parse(bad).is_err(), "{bad} should be refused");
        }
        let err = Grants::parse(&["http://ok".into(), "nope".into()]).unwrap_err();
        assert!(err.contains("\"nope\""), "{err}");
    }

    #[test]
    fn origins_display_without_default_ports() {
        assert_eq!(origin("https://a.test:443/x").to_string(), "https://a.test");
        assert_eq!(origin("http://[::1]:81/").to_string(), "http://[::1]:81");
        assert_eq!(origin("http://[::1]:81/").bare_host(), "::1");
        assert!(Origin::of(&Url::parse("ftp://a.test/").unwrap()).is_err());
    }
}
