//! The stand-in TonAPI, Telegram Bot API and bot web service of the test
//! suite, on the ports `examples/telegram-bot/taskhost.toml` grants, for
//! running the Telegram bot example locally:
//! `cargo run -p taskhost-tests --bin telegram-bot-standins`. They accept
//! the key in `$TONAPI_KEY` and the token in `$TELEGRAM_BOT_TOKEN`. TonAPI
//! shows one transfer on `$WALLET` (default `UQ-demo-wallet`) with memo
//! `$MEMO` (default `i3lani_1`) of `$NANOTONS` (default 10 TON); the Bot
//! API counts 20,000 members in `@i3lani`. Each request is printed.

#[path = "../all/support/standins.rs"]
#[allow(dead_code)] // the tests use more of it than this binary
mod standins;

use std::time::Duration;

fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.into());
    let tonapi = standins::tonapi_at("127.0.0.1:8093", &env("TONAPI_KEY", "tonapi-key"));
    let telegram = standins::telegram_at("127.0.0.1:8094", &env("TELEGRAM_BOT_TOKEN", "bot-token"));
    let web = standins::web_at("127.0.0.1:8095");
    let wallet = env("WALLET", "UQ-demo-wallet");
    let nanotons: i64 = env("NANOTONS", "10000000000")
        .parse()
        .expect("NANOTONS is a whole number");
    tonapi.set(
        &wallet,
        serde_json::json!([standins::ton_transfer(
            &wallet,
            "demo-tx",
            nanotons,
            &env("MEMO", "i3lani_1")
        )]),
    );
    telegram.set("@i3lani", serde_json::json!(20_000));
    println!(
        "TonAPI on {}, Telegram on {}, web service on {}",
        tonapi.url, telegram.url, web.url
    );
    let mut seen = [0; 3];
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for ((name, standin), seen) in [("tonapi", &tonapi), ("telegram", &telegram), ("web", &web)]
            .into_iter()
            .zip(seen.iter_mut())
        {
            let calls = standin.calls();
            for c in &calls[*seen..] {
                println!("{name}: {} {} {}", c.status, c.key, c.body);
            }
            *seen = calls.len();
        }
    }
}
