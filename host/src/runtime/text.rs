//! Plugin text on its way into host records and logs: cut to a size, and
//! made unable to pass for a line the host wrote.

use std::borrow::Cow;

/// What marks text that was cut.
pub const TRUNCATED: &str = "… [truncated]";

/// `text` cut to at most `max` bytes (on a character boundary), marked
/// [`TRUNCATED`] when anything was cut (a `max` below the marker's length
/// leaves just the marker). Whatever a plugin says, a host log line or a
/// stored message stays bounded.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub(TRUNCATED.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{TRUNCATED}", &text[..end]))
}

/// Cuts an owned message in place, like [`clip`].
pub fn clip_in_place(text: &mut String, max: usize) {
    if let Cow::Owned(cut) = clip(text, max) {
        *text = cut;
    }
}

/// `text` on one line: newlines, carriage returns and other control
/// characters are written as escapes (`\n`, `\u{1b}`), so a plugin's `log`
/// line can never start a line of its own (such as a forged `[DENIED]`).
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_char_boundary_and_marked() {
        assert_eq!(clip("short", 100), "short");
        let long = "é".repeat(1000);
        let cut = clip(&long, 64);
        assert!(cut.len() <= 64, "{}", cut.len());
        assert!(cut.ends_with(TRUNCATED), "{cut}");
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn control_characters_cannot_start_a_line() {
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(
            one_line("ok\n[DENIED] forged\r\u{1b}[31m"),
            "ok\\n[DENIED] forged\\r\\u{1b}[31m"
        );
    }
}
