//! Config sections that name nothing loaded. `[plugins.quote-fetch]` for
//! `quote_fetch.wasm`, or `[handlers.helo]`, would otherwise be ignored in
//! silence: the grant or limit the operator wrote never applies. Each is
//! warned about at start, with the nearest loaded name.

use crate::config::Config;
use crate::enqueue::near_matches;

use super::Registry;

/// One warning per `[plugins.X]` naming no loaded plugin and per
/// `[handlers.X]` naming no loaded handler; also logged at `warn`.
pub fn warn_unmatched(config: &Config, registry: &Registry) -> Vec<String> {
    let plugins: Vec<String> = registry
        .plugins()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    let handlers = registry.handler_names();
    let mut warnings = Vec::new();
    for name in config.plugins.keys().filter(|n| !plugins.contains(n)) {
        let stem = name.replace('-', "_");
        let hint = if plugins.contains(&stem) {
            format!(
                "; a plugin is named by its file stem, in which a crate's dashes are \
                 underscores: write [plugins.{stem}]"
            )
        } else {
            suggestion(&near_matches(&plugins, name))
        };
        warnings.push(format!(
            "[plugins.{name}] names no loaded plugin, so its grants apply to nothing{hint}"
        ));
    }
    for name in config.handlers.keys().filter(|n| !handlers.contains(n)) {
        warnings.push(format!(
            "[handlers.{name:?}] names no loaded handler, so its settings apply to nothing{}",
            suggestion(&near_matches(&handlers, name))
        ));
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    warnings
}

fn suggestion(near: &[String]) -> String {
    match near {
        [] => String::new(),
        near => format!(" (did you mean {}?)", near.join(", ")),
    }
}
