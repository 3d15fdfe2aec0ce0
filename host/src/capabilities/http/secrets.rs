//! `{secret:NAME}` references and the redaction of secret values.
//!
//! A plugin writes `{secret:NAME}` into a URL path or query, a header value
//! or a body; the host puts the value in just before the request leaves, so
//! the plugin never handles it. Every text that leaves the host side — an
//! error returned to the plugin, a `tracing` line, the job's captured log,
//! an outcome message stored in the job record — goes through a
//! [`Redactor`], which replaces each value (raw, and in the encoded forms a
//! URL, JSON or `{:?}` would give it) with `[redacted]`.

use std::collections::BTreeMap;

use crate::config::REDACTED;

const OPEN: &str = "{secret:";

/// A reference to a secret this plugin does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSecret(pub String);

/// Whether `text` refers to any secret.
pub fn mentions_secret(text: &str) -> bool {
    text.contains(OPEN)
}

/// Replaces every `{secret:NAME}` in `text` with `lookup(NAME)`.
pub fn substitute<'v>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, UnknownSecret> {
    let bytes = substitute_bytes(text.as_bytes(), lookup)?;
    Ok(String::from_utf8(bytes).expect("UTF-8 text with UTF-8 values spliced in at ASCII marks"))
}

/// [`substitute`] over bytes (a request body need not be text).
pub fn substitute_bytes<'v>(
    data: &[u8],
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> Result<Vec<u8>, UnknownSecret> {
    let open = OPEN.as_bytes();
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = find(rest, open) {
        out.extend_from_slice(&rest[..at]);
        let after = &rest[at + open.len()..];
        let Some(end) = after.iter().position(|&b| b == b'}') else {
            out.extend_from_slice(&rest[at..]);
            return Ok(out);
        };
        let name = &after[..end];
        // Only a plausible name is a reference; anything else stays as written.
        let valid = !name.is_empty()
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            out.extend_from_slice(open);
            rest = after;
            continue;
        }
        let name = std::str::from_utf8(name).expect("ASCII");
        let value = lookup(name).ok_or_else(|| UnknownSecret(name.to_string()))?;
        out.extend_from_slice(value.as_bytes());
        rest = &after[end + 1..];
    }
    out.extend_from_slice(rest);
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Replaces secret values in text. Built once per plugin from its secrets.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every form of every value, longest first (so a value that contains
    /// another is replaced whole).
    needles: Vec<String>,
}

impl Redactor {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut needles: Vec<String> = values
            .into_iter()
            .filter(|v| !v.is_empty())
            .flat_map(forms)
            .collect();
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        needles.dedup();
        Redactor { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret value replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out
    }

    /// Redacts in place; cheap when there is nothing to redact.
    pub fn redact_in_place(&self, text: &mut String) {
        if self.needles.iter().any(|n| text.contains(n.as_str())) {
            *text = self.redact(text);
        }
    }

    /// Redacts every string (keys included) of a JSON value.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => self.redact_in_place(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (mut k, mut v) in entries {
                    self.redact_in_place(&mut k);
                    self.redact_json(&mut v);
                    map.insert(k, v);
                }
            }
            _ => {}
        }
    }
}

/// The forms a value takes in the texts we emit: as is, percent-encoded
/// as the URL parser writes it in a path, a query or a form, fully
/// percent-encoded (either hex case), JSON-escaped and `{:?}`-escaped.
fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    if let Ok(u) = url::Url::parse(&format!("http://x/{value}")) {
        forms.push(u.path()[1..].to_string());
    }
    if let Ok(u) = url::Url::parse(&format!("http://x/?{value}")) {
        forms.extend(u.query().map(str::to_string));
    }
    forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
    let upper: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    forms.push(lower_hex(&upper));
    forms.push(upper);
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json[1..json.len() - 1].to_string());
    }
    let debug = format!("{value:?}");
    forms.push(debug[1..debug.len() - 1].to_string());
    forms.retain(|f| !f.is_empty());
    forms
}

/// `%2F` → `%2f`, leaving other characters alone.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for _ in 0..2 {
                if let Some(h) = chars.next() {
                    out.push(h.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

/// A plugin's secret values by name.
#[derive(Debug, Clone, Default)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl SecretValues {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<&'static str> {
        match name {
            "telegram_token" => Some("123456:ABC-def_ghi"),
            "key" => Some("k e/y?"),
            _ => None,
        }
    }

    #[test]
    fn references_are_substituted() {
        assert_eq!(
            substitute("/bot{secret:telegram_token}/sendMessage", lookup).unwrap(),
            "/bot123456:ABC-def_ghi/sendMessage"
        );
        assert_eq!(
            substitute("Bearer {secret:key}{secret:key}", lookup).unwrap(),
            "Bearer k e/y?k e/y?"
        );
        assert_eq!(
            substitute("no refs {here}", lookup).unwrap(),
            "no refs {here}"
        );
        // Not a reference: a malformed name or an unclosed brace.
        assert_eq!(
            substitute("{secret:a b} {secret:x", lookup).unwrap(),
            "{secret:a b} {secret:x"
        );
        assert_eq!(
            substitute("x{secret:nope}", lookup),
            Err(UnknownSecret("nope".into()))
        );
        assert_eq!(
            substitute_bytes(b"{\"t\":\"{secret:key}\"}", lookup).unwrap(),
            b"{\"t\":\"k e/y?\"}"
        );
        assert!(mentions_secret("a{secret:b}") && !mentions_secret("a{b}"));
    }

    #[test]
    fn every_form_of_a_value_is_redacted() {
        let r = Redactor::new(["k e/y?\"", "123456:ABC-def_ghi", ""]);
        for text in [
            "k e/y?\"",
            "k%20e/y?%22",
            "k+e%2Fy%3F%22",
            "k%20e%2Fy%3F%22",
            "k%20e%2fy%3f%22",
            "k e/y?\\\"",
            "https://api.example/bot123456:ABC-def_ghi/sendMessage",
            "bot123456%3AABC-def_ghi",
        ] {
            let out = r.redact(&format!("before {text} after"));
            assert!(
                !out.contains("e/y") && !out.contains("ABC-def") && !out.contains("e%2"),
                "{text} → {out}"
            );
            assert!(out.contains(REDACTED), "{out}");
        }
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert!(Redactor::new([""]).is_empty());
    }

    #[test]
    fn json_values_are_redacted_keys_included() {
        let r = Redactor::new(["s3cr3t"]);
        let mut v = serde_json::json!({"a": ["x s3cr3t"], "s3cr3t": 1, "n": 2});
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["x [redacted]"], "[redacted]": 1, "n": 2})
        );
    }
}
