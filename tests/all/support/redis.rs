//! A `redis-server` for a test (the same fixture the host's own Redis
//! store tests use), and the config lines that put a host's store on it.

pub use taskhost::store::redis::test_server::RedisServer;

/// Starts a server for one test.
pub fn start() -> RedisServer {
    RedisServer::start().expect("redis-server starts (.ci/run installs it)")
}

/// The `[store]` table of a host on `url` under `prefix`.
pub fn store_table(url: &str, prefix: &str) -> String {
    format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\nprefix = \"{prefix}\"\n")
}

/// A store client on `url` under `prefix`, as the hosts see it.
pub async fn open(url: &str, prefix: &str) -> taskhost::store::redis::RedisStore {
    let options = taskhost::store::redis::RedisOptions {
        prefix: prefix.into(),
        ..taskhost::store::redis::RedisOptions::new(url)
    };
    taskhost::store::redis::RedisStore::open(
        options,
        std::sync::Arc::new(taskhost::clock::SystemClock),
    )
    .await
    .expect("open the Redis store")
}
