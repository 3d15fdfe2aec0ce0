//! `{hmac-sha256:NAME}`: a request signature the host computes, so a
//! plugin can call an exchange that wants HMAC-signed requests without
//! ever holding the signing secret in clear.
//!
//! The signature is the lower-case hex HMAC-SHA256, under the plugin's
//! secret `NAME`, of the request's query string followed by its body, as
//! they are sent (after `{secret:…}` references are filled in). When the
//! reference stands in the query, it must be the value of the last
//! parameter, and the signed query is everything before that parameter:
//! `?symbol=BTC&timestamp=1700000000000&signature={hmac-sha256:api_secret}`
//! signs `symbol=BTC&timestamp=1700000000000` — the scheme of Binance-style
//! exchange APIs. In a header value it signs the whole query and the body.
//! One reference per request; it may not stand in the body (the body is
//! part of what is signed). The signature itself is not secret; the
//! secret's value is redacted like every secret.

use ring::hmac;

use super::secrets::UnknownSecret;

const OPEN: &str = "{hmac-sha256:";

/// Why a request's signature reference cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    Unknown(UnknownSecret),
    Invalid(String),
}

/// Whether `text` carries a signature reference.
pub fn mentions_signature(text: &str) -> bool {
    text.contains(OPEN)
}

/// Fills in the one `{hmac-sha256:NAME}` of a request: `rest` is the URL
/// after its origin (path, query), `headers` the header values, both with
/// secrets already in place. Returns whether a signature was made.
pub fn sign<'v>(
    rest: &mut String,
    headers: &mut [String],
    body: Option<&[u8]>,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> Result<bool, SignError> {
    let in_url = rest.matches(OPEN).count();
    let in_headers: usize = headers.iter().map(|h| h.matches(OPEN).count()).sum();
    if body.is_some_and(|b| b.windows(OPEN.len()).any(|w| w == OPEN.as_bytes())) {
        return Err(SignError::Invalid(
            "{hmac-sha256:…} may stand in the query or a header, not in the body it signs".into(),
        ));
    }
    match in_url + in_headers {
        0 => return Ok(false),
        1 => {}
        _ => {
            return Err(SignError::Invalid(
                "a request may carry one {hmac-sha256:…} reference".into(),
            ));
        }
    }
    let query_start = rest.find('?').map(|i| i + 1);
    let query_end = rest.find('#').unwrap_or(rest.len());
    let query = |rest: &str| query_start.map_or(String::new(), |s| rest[s..query_end].to_string());
    let (message_query, place) = if in_url == 1 {
        let at = rest.find(OPEN).expect("counted");
        let Some(start) = query_start.filter(|&s| s <= at) else {
            return Err(SignError::Invalid(
                "{hmac-sha256:…} in a URL must be a query parameter's value".into(),
            ));
        };
        let param_start = rest[start..at].rfind('&').map_or(start, |i| start + i + 1);
        let close = at + rest[at..].find('}').ok_or_else(unclosed)? + 1;
        if close != query_end {
            return Err(SignError::Invalid(
                "{hmac-sha256:…} in a URL must be the value of the last query parameter".into(),
            ));
        }
        let signed_end = param_start.saturating_sub(1).max(start);
        (rest[start..signed_end].to_string(), None)
    } else {
        let index = headers
            .iter()
            .position(|h| h.contains(OPEN))
            .expect("counted");
        (query(rest), Some(index))
    };
    let mut message = message_query.into_bytes();
    message.extend_from_slice(body.unwrap_or_default());
    let text: &mut String = match place {
        None => rest,
        Some(i) => &mut headers[i],
    };
    let at = text.find(OPEN).expect("counted");
    let close = at + text[at..].find('}').ok_or_else(unclosed)?;
    let name = &text[at + OPEN.len()..close];
    let secret = lookup(name).ok_or_else(|| SignError::Unknown(UnknownSecret(name.to_string())))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature = hex::encode(hmac::sign(&key, &message).as_ref());
    text.replace_range(at..=close, &signature);
    Ok(true)
}

fn unclosed() -> SignError {
    SignError::Invalid("{hmac-sha256:NAME} is not closed by `}`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<&'static str> {
        (name == "api_secret")
            .then_some("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j")
    }

    /// The example of Binance's API documentation (SIGNED endpoints).
    #[test]
    fn a_query_parameter_signs_the_query_before_it_as_exchanges_define_it() {
        let mut rest = "/api/v3/order?symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature={hmac-sha256:api_secret}".to_string();
        assert!(sign(&mut rest, &mut [], None, lookup).unwrap());
        assert!(
            rest.ends_with(
                "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
            ),
            "{rest}"
        );
    }

    #[test]
    fn a_header_signs_the_whole_query_and_the_body() {
        let mut headers = vec!["{hmac-sha256:api_secret}".to_string()];
        let mut rest =
            "/api/v3/order?symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC".to_string();
        let body = b"quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert!(sign(&mut rest, &mut headers, Some(body), lookup).unwrap());
        assert_eq!(
            headers[0],
            "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
        );
        assert!(rest.ends_with("timeInForce=GTC"));
    }

    #[test]
    fn no_reference_changes_nothing() {
        let mut rest = "/a?b=1".to_string();
        assert!(!sign(&mut rest, &mut ["x".into()], Some(b"y"), lookup).unwrap());
        assert_eq!(rest, "/a?b=1");
    }

    #[test]
    fn misplaced_or_unknown_references_are_refused() {
        let bad = |rest: &str, headers: &[&str], body: Option<&[u8]>| {
            let mut rest = rest.to_string();
            let mut headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
            sign(&mut rest, &mut headers, body, lookup).unwrap_err()
        };
        assert_eq!(
            bad("/a?s={hmac-sha256:other}", &[], None),
            SignError::Unknown(UnknownSecret("other".into()))
        );
        for (rest, headers, body) in [
            ("/{hmac-sha256:api_secret}?a=1", &[][..], None),
            ("/a?s={hmac-sha256:api_secret}&t=1", &[], None),
            (
                "/a?s={hmac-sha256:api_secret}",
                &["{hmac-sha256:api_secret}"],
                None,
            ),
            ("/a", &[], Some(&b"{hmac-sha256:api_secret}"[..])),
            ("/a?s={hmac-sha256:api_secret", &[], None),
        ] {
            assert!(
                matches!(bad(rest, headers, body), SignError::Invalid(_)),
                "{rest}"
            );
        }
    }
}
