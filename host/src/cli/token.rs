//! `taskhost token new | hash`: API tokens, of which the config keeps only hashes.

use std::process::ExitCode;

use clap::Subcommand;
use rand::RngCore;

use super::BadInput;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a random token and print it with its `[[api.tokens]]` entry.
    New {
        #[arg(long, default_value = "app")]
        name: String,
        /// Comma-separated: enqueue, read, admin.
        #[arg(long, default_value = "enqueue,read")]
        scopes: String,
    },
    /// Print the SHA-256 of a token, for `[[api.tokens]] sha256`.
    Hash { token: String },
}

pub fn execute(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::New { name, scopes } => {
            let scopes = parse_scopes(&scopes)?;
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            let token = format!("th_{}", hex::encode(bytes));
            let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
            println!("token (give it to the client; it is not stored): {token}");
            println!();
            println!("[[api.tokens]]");
            println!("name = {name:?}");
            println!("sha256 = {:?}", crate::api::hash_token(&token));
            println!("scopes = [{}]", scopes.join(", "));
        }
        TokenCommand::Hash { token } => println!("{}", crate::api::hash_token(&token)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The scopes of `--scopes`, checked: a token printed with a scope the
/// host does not know would be refused only when the config is loaded.
fn parse_scopes(text: &str) -> Result<Vec<&str>, BadInput> {
    const KNOWN: [&str; 3] = ["enqueue", "read", "admin"];
    let scopes: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if scopes.is_empty() {
        return Err(BadInput(format!(
            "--scopes: give at least one of {}",
            KNOWN.join(", ")
        )));
    }
    if let Some(bad) = scopes.iter().find(|s| !KNOWN.contains(s)) {
        return Err(BadInput(format!(
            "--scopes: unknown scope {bad:?} (expected {})",
            KNOWN.join(", ")
        )));
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::parse_scopes;

    #[test]
    fn scopes_are_checked_before_a_token_is_printed() {
        assert_eq!(parse_scopes("enqueue, read").unwrap(), ["enqueue", "read"]);
        let err = parse_scopes("read,bogus").unwrap_err().0;
        assert_eq!(
            err,
            r#"--scopes: unknown scope "bogus" (expected enqueue, read, admin)"#
        );
        assert!(parse_scopes(" , ").is_err());
    }
}
