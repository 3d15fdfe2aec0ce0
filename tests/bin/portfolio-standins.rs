//! The stand-in exchange, trading bots and mail provider of the test
//! suite, on the ports `examples/portfolio/taskhost.toml` grants, for
//! running the portfolio example locally:
//! `cargo run -p taskhost-tests --bin portfolio-standins`. The exchange
//! knows the key `$EXCHANGE_KEY_1` (default `demo-key`) signed with
//! `$EXCHANGE_SECRET_1` (default `demo-secret`), holding 0.5 BTC and
//! 1,250 USDT; the bots answer healthy at `/bots/{id}`, except bot 2,
//! which fails its first three checks; the mail provider accepts
//! `$MAIL_API_KEY` (default `demo-mail-key`). Each request is printed.

#[path = "../all/support/portfolio_standins.rs"]
#[allow(dead_code)] // the tests use more of it than this binary
mod portfolio_standins;
#[path = "../all/support/standins.rs"]
#[allow(dead_code)] // the tests use more of it than this binary
mod standins;

use std::time::Duration;

fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.into());
    let exchange = portfolio_standins::exchange_at("127.0.0.1:8096");
    let bots = portfolio_standins::bots_at("127.0.0.1:8097");
    let mail = portfolio_standins::mail_at("127.0.0.1:8098", &env("MAIL_API_KEY", "demo-mail-key"));
    exchange.set(
        &env("EXCHANGE_KEY_1", "demo-key"),
        portfolio_standins::account(
            &env("EXCHANGE_SECRET_1", "demo-secret"),
            &[
                ("BTC", "0.50000000", "0.00000000"),
                ("USDT", "1250.00", "0.00"),
            ],
        ),
    );
    bots.script("2", vec![standins::Reply::Fail(503); 3]);
    println!(
        "exchange on {}, bots on {}/bots/{{id}}, mail provider on {}",
        exchange.url, bots.url, mail.url
    );
    let mut seen = [0; 3];
    loop {
        std::thread::sleep(Duration::from_millis(200));
        for ((name, standin), seen) in [("exchange", &exchange), ("bots", &bots), ("mail", &mail)]
            .into_iter()
            .zip(seen.iter_mut())
        {
            let calls = standin.calls();
            for c in &calls[*seen..] {
                // The exchange's calls are keyed by API key: not printed.
                let key = if name == "exchange" { "" } else { &c.key };
                println!("{name}: {} {key} {}", c.status, c.body);
            }
            *seen = calls.len();
        }
    }
}
