//! Builds the plugins the end-to-end tests load, and tells the tests where
//! they are through `TASKHOST_PLUGIN_DIR`.

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
}
