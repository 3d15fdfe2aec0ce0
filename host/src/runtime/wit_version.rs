//! Which versions of the `taskhost:plugin` WIT package a plugin may be built
//! against. Semver's rule, as the component linker applies it: a plugin
//! built against an older release of the same major line (for `0.y`
//! releases, the same `0.y`) links against this host's interfaces; any
//! other version is refused before linking, with a message naming what the
//! plugin wants and what this host speaks, instead of a list of missing
//! imports.

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

/// The WIT package every plugin is built against.
pub const WIT_PACKAGE: &str = "taskhost:plugin";
/// The version of [`WIT_PACKAGE`] this host implements (`wit/plugin.wit`).
///
/// 0.1.1 added `jobs.start-batch`, 0.1.2 `jobs.start-chain`. The linker
/// matches `0.1.x` imports and exports by their `0.1` track, so plugins
/// built against an older 0.1 (which never import the newer functions)
/// link against these definitions unchanged.
pub const WIT_VERSION: &str = "0.1.2";

type Version = (u64, u64, u64);

fn parse(text: &str) -> Option<Version> {
    // Pre-release and build suffixes do not change the line a version is on.
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// The part of a version that must match: the major, or for `0.y` the minor.
fn line(v: Version) -> (u64, u64) {
    match v {
        (0, minor, _) => (0, minor),
        (major, _, _) => (major, 0),
    }
}

fn host() -> Version {
    parse(WIT_VERSION).expect("WIT_VERSION is a version")
}

/// The versions this host speaks, for messages: `0.1.2 (and older 0.1.x)`.
pub fn speaks() -> String {
    let (major, minor, _) = host();
    let family = match major {
        0 => format!("0.{minor}.x"),
        m => format!("{m}.x"),
    };
    format!("{WIT_PACKAGE}@{WIT_VERSION} (plugins built against an older {family} load too)")
}

/// Whether a plugin built against `version` of the package loads here.
pub fn accepts(version: &str) -> bool {
    parse(version).is_some_and(|v| line(v) == line(host()) && v <= host())
}

/// The first `taskhost:plugin` version among `names` (import and export
/// names such as `taskhost:plugin/log@0.1.0`) this host does not speak.
pub fn unspoken<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let prefix = format!("{WIT_PACKAGE}/");
    names
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .filter_map(|n| n.split_once('@').map(|(_, v)| v))
        .find(|v| !accepts(v))
        .map(str::to_owned)
}

/// Refuses a component that imports or exports a version of the package
/// this host does not speak.
pub fn check(engine: &Engine, component: &Component, path: &Path) -> Result<(), PluginError> {
    let ty = component.component_type();
    let names: Vec<&str> = ty
        .imports(engine)
        .map(|(n, _)| n)
        .chain(ty.exports(engine).map(|(n, _)| n))
        .collect();
    match unspoken(names) {
        None => Ok(()),
        Some(found) => Err(PluginError::WitVersion {
            path: path.to_path_buf(),
            found,
            speaks: speaks(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_line_loads_and_other_majors_are_refused() {
        assert!(accepts(WIT_VERSION));
        assert!(accepts("0.1.0-rc.1"));
        // Another 0.y is another major line under semver; so is 1.x.
        assert!(!accepts("0.2.0"));
        assert!(!accepts("1.0.0"));
        assert!(!accepts("9.1.0"));
        assert!(!accepts("not-a-version"));
        let names = [
            "wasi:io/streams@0.2.0",
            "taskhost:plugin/log@0.1.0",
            "taskhost:plugin/handler@2.0.0",
        ];
        assert_eq!(unspoken(names), Some("2.0.0".to_string()));
        assert_eq!(unspoken(["taskhost:plugin/log@0.1.0"]), None);
        assert!(speaks().contains(WIT_VERSION), "{}", speaks());
        assert!(accepts("0.1.0"), "plugins built against 0.1.0 load");
    }

    #[test]
    fn older_minors_of_a_major_line_are_accepted() {
        // The rule for a 1.x host, checked on the helpers the check uses.
        assert_eq!(line((1, 4, 0)), line((1, 2, 7)));
        assert_ne!(line((2, 0, 0)), line((1, 9, 9)));
        assert_ne!(line((0, 2, 0)), line((0, 1, 0)));
        assert_eq!(line((0, 1, 9)), line((0, 1, 0)));
    }
}
