//! `taskhost init`: a starter config, so a new host begins from a file that
//! names every setting worth knowing, not from the defaults in the dark.

use std::path::Path;
use std::process::ExitCode;

use super::BadInput;

/// The starter config. Relative paths are read from the file's folder.
const STARTER: &str = r#"# taskhost.toml — written by `taskhost init`. Every key can be overridden
# from the environment: TASKHOST_<SECTION>__<KEY>, e.g. TASKHOST_API__LISTEN.

[host]
plugins = "plugins"          # drop .wasm plugins here
cache = ".taskhost/cache"    # compiled plugins (0700, keyed digests)
data = ".taskhost"           # the embedded store lives here

# Limits for every handler that does not set its own ([handlers."name"]).
[limits]
timeout = "30s"
memory = "64MiB"

[store]
durability = "normal"        # "full" also survives power loss
retention = "7d"             # finished jobs; dead jobs stay until purged

[workers]
queues = { default = 64 }    # queue = jobs of it running at once on this host
lease = "30s"

[retry]                      # 5 attempts, 1 s doubling up to 1 h, ±10 %
max_attempts = 5
base = "1s"
max_delay = "1h"

# What each plugin (by file stem) may reach:
# [plugins.notify]
# http = ["https://api.telegram.org"]
# secrets = { telegram_token = "env:TELEGRAM_TOKEN" }

# [[schedules]]
# name = "nightly-cleanup"
# schedule = "0 3 * * *"
# handler = "cleanup"

[api]
listen = "127.0.0.1:8080"    # with no [[api.tokens]], loopback only
# `taskhost token new --scopes enqueue,read` prints a token and its entry.
"#;

/// Writes `taskhost.toml` (and an empty `plugins/`) into `dir`; refuses to
/// overwrite a config that is there.
pub fn execute(dir: &Path) -> anyhow::Result<ExitCode> {
    let file = dir.join("taskhost.toml");
    if file.exists() {
        return Err(BadInput(format!(
            "{} exists; taskhost init does not overwrite a config",
            file.display()
        ))
        .into());
    }
    std::fs::create_dir_all(dir.join("plugins")).map_err(|e| {
        BadInput(format!(
            "cannot create {}: {e}",
            dir.join("plugins").display()
        ))
    })?;
    std::fs::write(&file, STARTER)
        .map_err(|e| BadInput(format!("cannot write {}: {e}", file.display())))?;
    println!("wrote {}", file.display());
    println!(
        "next: put plugins (.wasm) into {}",
        dir.join("plugins").display()
    );
    println!("      taskhost --config {} serve", file.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_config_loads_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        execute(dir.path()).unwrap();
        let file = dir.path().join("taskhost.toml");
        let config = crate::config::load(&file, std::iter::empty()).unwrap();
        assert_eq!(config.api.listen, "127.0.0.1:8080");
        assert_eq!(config.plugin_dir(), dir.path().join("plugins"));
        std::fs::write(&file, "# mine").unwrap();
        assert!(execute(dir.path()).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine");
    }
}
