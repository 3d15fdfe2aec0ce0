//! Reading the node's JSON: hex quantities, addresses, hashes, and the
//! decimal text amounts travel as (a uint256 does not fit any WIT integer).

use serde_json::Value as Json;

/// `"0x1a"` → 26. Quantities up to 64 bits (block numbers, gas, indexes).
pub(crate) fn quantity(v: &Json, what: &str) -> Result<u64, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("{what}: expected a hex quantity, got {v}"))?;
    let digits = strip_0x(text).ok_or_else(|| format!("{what}: not a hex quantity: {text:?}"))?;
    if digits.is_empty() {
        return Err(format!("{what}: empty hex quantity"));
    }
    u64::from_str_radix(digits, 16).map_err(|e| format!("{what}: {text:?}: {e}"))
}

/// Like [`quantity`], with `null` (or absent) as `None`.
pub(crate) fn opt_quantity(v: Option<&Json>, what: &str) -> Result<Option<u64>, String> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(v) => quantity(v, what).map(Some),
    }
}

/// `"0x0de0b6b3a7640000"` → `"1000000000000000000"`: any length of hex
/// (a uint256 quantity or 32-byte word) as a decimal string.
pub(crate) fn hex_to_decimal(text: &str) -> Result<String, String> {
    let digits = strip_0x(text).ok_or_else(|| format!("not a hex number: {text:?}"))?;
    // Little-endian base-10^9 limbs.
    let mut limbs: Vec<u32> = vec![0];
    for c in digits.chars() {
        let nibble = c
            .to_digit(16)
            .ok_or_else(|| format!("not a hex number: {text:?}"))?;
        let mut carry = u64::from(nibble);
        for limb in &mut limbs {
            let v = u64::from(*limb) * 16 + carry;
            *limb = (v % 1_000_000_000) as u32;
            carry = v / 1_000_000_000;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut out = limbs.last().copied().unwrap_or(0).to_string();
    for limb in limbs.iter().rev().skip(1) {
        out.push_str(&format!("{limb:09}"));
    }
    Ok(out)
}

/// The decimal value of a hex JSON string field.
pub(crate) fn amount(v: &Json, what: &str) -> Result<String, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("{what}: expected a hex number, got {v}"))?;
    hex_to_decimal(text).map_err(|e| format!("{what}: {e}"))
}

fn strip_0x(text: &str) -> Option<&str> {
    text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))
}

fn is_hex_of_len(text: &str, len: usize) -> bool {
    strip_0x(text).is_some_and(|d| d.len() == len && d.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A plugin's address argument, lower-cased: `0x` and 40 hex digits.
pub(crate) fn address_arg(text: &str, what: &str) -> Result<String, String> {
    if is_hex_of_len(text, 40) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "{what} must be an address (0x and 40 hex digits), got {text:?}"
        ))
    }
}

/// A plugin's transaction hash argument, lower-cased: `0x` and 64 hex digits.
pub(crate) fn hash_arg(text: &str) -> Result<String, String> {
    if is_hex_of_len(text, 64) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "a transaction hash is 0x and 64 hex digits, got {text:?}"
        ))
    }
}

/// A string field of the node's answer, lower-cased (addresses, hashes).
pub(crate) fn text(v: Option<&Json>, what: &str) -> Result<String, String> {
    v.and_then(Json::as_str)
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| format!("{what}: missing"))
}

/// Like [`text`], with `null` (or absent) as `None`.
pub(crate) fn opt_text(v: Option<&Json>, what: &str) -> Result<Option<String>, String> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(v) => text(Some(v), what).map(Some),
    }
}

/// The address in the low 20 bytes of a 32-byte log topic.
pub(crate) fn topic_address(v: &Json, what: &str) -> Result<String, String> {
    let t = v
        .as_str()
        .filter(|t| is_hex_of_len(t, 64))
        .ok_or_else(|| format!("{what}: not a 32-byte topic: {v}"))?;
    Ok(format!("0x{}", t[t.len() - 40..].to_ascii_lowercase()))
}

/// An address as a 32-byte log topic.
pub(crate) fn address_topic(address: &str) -> String {
    format!("0x{:0>64}", &address[2..])
}

/// A block number as the node wants it.
pub(crate) fn hex_quantity(n: u64) -> String {
    format!("0x{n:x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hex_turns_decimal() {
        assert_eq!(hex_to_decimal("0x0").unwrap(), "0");
        assert_eq!(hex_to_decimal("0x").unwrap(), "0");
        assert_eq!(hex_to_decimal("0x1a").unwrap(), "26");
        assert_eq!(
            hex_to_decimal("0x0de0b6b3a7640000").unwrap(),
            "1000000000000000000"
        );
        assert_eq!(
            hex_to_decimal(&format!("0x{}", "f".repeat(64))).unwrap(),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        assert_eq!(
            hex_to_decimal("0x00000000000000000000000000000000000000000000000000000000000003e8")
                .unwrap(),
            "1000"
        );
        assert!(hex_to_decimal("12").is_err());
        assert!(hex_to_decimal("0xzz").is_err());
    }

    #[test]
    fn quantities_and_topics() {
        assert_eq!(quantity(&json!("0x10"), "n").unwrap(), 16);
        assert!(quantity(&json!(16), "n").is_err());
        assert_eq!(opt_quantity(Some(&Json::Null), "n").unwrap(), None);
        let a = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
        let lower = address_arg(a, "to").unwrap();
        let topic = address_topic(&lower);
        assert_eq!(topic.len(), 66);
        assert_eq!(topic_address(&json!(topic), "t").unwrap(), lower);
        assert!(address_arg("0x1234", "to").is_err());
        assert!(hash_arg("0x12").is_err());
    }
}
