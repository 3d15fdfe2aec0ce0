//! The `maintenance` grant: `VACUUM` and `ANALYZE`, and nothing else.
//!
//! A maintenance statement is recognised by a fixed grammar, not by a
//! list of forbidden words: after comments and blanks, `VACUUM` or
//! `ANALYZE`, optionally a name (`ANALYZE trades`, `VACUUM main`; for
//! PostgreSQL also `VACUUM ANALYZE [name]`), optionally one `;`, and
//! nothing more. Anything else that starts with one of the two words
//! (`VACUUM INTO 'file'`, which writes a file wherever the host may,
//! `VACUUM FULL`, a second statement) is `invalid`.
//!
//! Without the grant the databases refuse them too: a SQLite plugin
//! connection allows no attached database (VACUUM attaches one) and its
//! authorizer refuses ANALYZE; PostgreSQL runs every other call inside the
//! host's `BEGIN`, where VACUUM cannot run. The grammar check gives the
//! plugin a clear `denied` instead of those errors. (On PostgreSQL a write
//! grant could still reach ANALYZE indirectly, e.g. from a `DO` block; it
//! only refreshes planner statistics.)

/// One statement the maintenance grant allows, as the plugin wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Maintenance {
    /// `VACUUM` or `ANALYZE`.
    pub command: &'static str,
    /// The statement to run: the command and its name, normalised.
    pub sql: String,
}

/// `None`: not a maintenance statement (the other grants apply).
/// `Some(Err(why))`: starts like one but is not one the grant allows.
pub(crate) fn classify(sql: &str) -> Option<Result<Maintenance, String>> {
    let mut words = Words::new(sql);
    let first = words.next()?;
    let command = if first.eq_ignore_ascii_case("vacuum") {
        "VACUUM"
    } else if first.eq_ignore_ascii_case("analyze") {
        "ANALYZE"
    } else {
        return None;
    };
    let mut parts = vec![command.to_string()];
    let mut rest: Vec<&str> = words.by_ref().collect();
    if words.bad {
        return Some(Err(format!(
            "{command} takes at most a table or schema name (letters, digits, `_`, `.`)"
        )));
    }
    if rest.last() == Some(&";") {
        rest.pop();
    }
    if command == "VACUUM"
        && rest
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("analyze"))
    {
        parts.push("ANALYZE".into());
        rest.remove(0);
    }
    match rest.as_slice() {
        [] => {}
        [name] if is_name(name) && !is_keyword(name) => parts.push(name.to_string()),
        _ => {
            return Some(Err(format!(
                "only `{command} [name]` is allowed by the maintenance grant, one statement, \
                 without options (no INTO, FULL or a second statement)"
            )));
        }
    }
    Some(Ok(Maintenance {
        command,
        sql: parts.join(" "),
    }))
}

fn is_name(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('.')
        && !word.ends_with('.')
        && !word.contains("..")
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
}

fn is_keyword(word: &str) -> bool {
    ["into", "full", "freeze", "verbose"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
}

/// The words of a statement: names (letters, digits, `_`, `.`) and `;`,
/// skipping blanks and comments. Any other character sets `bad`.
struct Words<'a> {
    rest: &'a str,
    bad: bool,
}

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Self {
        Words {
            rest: sql,
            bad: false,
        }
    }

    fn skip_blanks(&mut self) {
        loop {
            let trimmed = self.rest.trim_start();
            if let Some(after) = trimmed.strip_prefix("--") {
                self.rest = after.split_once('\n').map_or("", |(_, r)| r);
            } else if let Some(after) = trimmed.strip_prefix("/*") {
                self.rest = after.split_once("*/").map_or("", |(_, r)| r);
            } else {
                self.rest = trimmed;
                return;
            }
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.skip_blanks();
        let first = self.rest.chars().next()?;
        if first == ';' {
            let (w, r) = self.rest.split_at(1);
            self.rest = r;
            return Some(w);
        }
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(self.rest.len());
        if end == 0 {
            self.bad = true;
            self.rest = "";
            return None;
        }
        let (w, r) = self.rest.split_at(end);
        self.rest = r;
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> String {
        match classify(sql) {
            Some(Ok(m)) => m.sql,
            other => panic!("{sql:?} gave {other:?}"),
        }
    }

    fn refused(sql: &str) -> String {
        match classify(sql) {
            Some(Err(why)) => why,
            other => panic!("{sql:?} gave {other:?}"),
        }
    }

    #[test]
    fn vacuum_and_analyze_with_at_most_a_name_are_maintenance() {
        assert_eq!(ok("VACUUM"), "VACUUM");
        assert_eq!(ok("  vacuum ;  "), "VACUUM");
        assert_eq!(
            ok("-- weekly\n/* the whole file */ Vacuum main"),
            "VACUUM main"
        );
        assert_eq!(ok("ANALYZE"), "ANALYZE");
        assert_eq!(ok("analyze trades;"), "ANALYZE trades");
        assert_eq!(ok("ANALYZE public.trades"), "ANALYZE public.trades");
        assert_eq!(ok("VACUUM ANALYZE"), "VACUUM ANALYZE");
        assert_eq!(ok("vacuum analyze trades"), "VACUUM ANALYZE trades");
    }

    #[test]
    fn other_statements_are_not_maintenance() {
        for sql in [
            "SELECT 1",
            "DELETE FROM trades",
            "EXPLAIN ANALYZE SELECT 1",
            "vacuumed",
            "",
            "-- VACUUM",
            "/* ANALYZE */ SELECT 1",
        ] {
            assert_eq!(classify(sql), None, "{sql:?}");
        }
    }

    #[test]
    fn anything_more_than_the_grammar_is_refused() {
        assert!(refused("VACUUM INTO '/tmp/copy.db'").contains("VACUUM"));
        assert!(refused("VACUUM into copy").contains("INTO"));
        assert!(refused("VACUUM FULL").contains("FULL"));
        assert!(refused("VACUUM; DROP TABLE trades").contains("second statement"));
        assert!(refused("ANALYZE trades; ANALYZE logs").contains("ANALYZE"));
        assert!(refused("ANALYZE a b").contains("ANALYZE"));
        assert!(refused("VACUUM (VERBOSE)").contains("name"));
        assert!(refused("ANALYZE \"trades\"").contains("name"));
        assert!(refused("ANALYZE .x").contains("ANALYZE"));
    }
}
