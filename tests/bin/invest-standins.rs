//! The stand-in payment provider and Telegram Bot API of the test suite,
//! on the ports `examples/invest/taskhost.toml` grants, for running the
//! invest example locally: `cargo run -p taskhost-tests --bin invest-standins`.
//! They accept the API key in `$PROVIDER_API_KEY` and the bot token in
//! `$TELEGRAM_BOT_TOKEN`, answer every request with success, and print
//! each request they receive.

#[path = "../all/support/standins.rs"]
#[allow(dead_code)] // the tests use more of it than this binary
mod standins;

use std::time::Duration;

fn main() {
    let key = std::env::var("PROVIDER_API_KEY").unwrap_or_else(|_| "provider-key".into());
    let token = std::env::var("TELEGRAM_BOT_TOKEN").unwrap_or_else(|_| "bot-token".into());
    let provider = standins::provider_at("127.0.0.1:8091", &key);
    let telegram = standins::telegram_at("127.0.0.1:8092", &token);
    println!(
        "payment provider on {}, Telegram on {}",
        provider.url, telegram.url
    );
    let (mut seen_p, mut seen_t) = (0, 0);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for (name, standin, seen) in [
            ("provider", &provider, &mut seen_p),
            ("telegram", &telegram, &mut seen_t),
        ] {
            let calls = standin.calls();
            for c in &calls[*seen..] {
                println!("{name}: {} {} {}", c.status, c.key, c.body);
            }
            *seen = calls.len();
        }
    }
}
