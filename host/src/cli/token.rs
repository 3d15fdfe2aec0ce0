//! `taskhost token new | hash`: API tokens, of which the config keeps only hashes.

use std::process::ExitCode;

use clap::Subcommand;
use rand::RngCore;

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
            let mut bytes = [0u8; 24];
            rand::rng().fill_bytes(&mut bytes);
            let token = format!("th_{}", hex::encode(bytes));
            let scopes: Vec<String> = scopes
                .split(',')
                .map(|s| format!("{:?}", s.trim()))
                .collect();
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
