//! Builds the plugins the end-to-end tests load, and tells the tests where
//! they are through `TASKHOST_PLUGIN_DIR` (Rust) and `TASKHOST_POLYGLOT_DIR`
//! (Python and JavaScript).

fn main() {
    let root = xtask::workspace_root();
    for path in xtask::plugin_sources(&root) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    match xtask::build_plugins(&root) {
        Ok(dir) => {
            println!("cargo:rustc-env=TASKHOST_PLUGIN_DIR={}", dir.display());
            println!(
                "cargo:rustc-env=TASKHOST_PLUGIN_VARIANT_DIR={}",
                xtask::plugin_variant_dir(&root).display()
            );
        }
        Err(e) => panic!("building the test plugins failed: {e}"),
    }
    // The Python and JavaScript plugins (componentize-py, componentize-js,
    // installed under target/ on first use), in a folder of their own.
    for path in xtask::polyglot::polyglot_sources(&root) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    match xtask::polyglot::build_polyglot(&root, false) {
        Ok(dir) => println!("cargo:rustc-env=TASKHOST_POLYGLOT_DIR={}", dir.display()),
        Err(e) => panic!("building the Python and JavaScript test plugins failed: {e}"),
    }
}
