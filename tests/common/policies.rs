//! Builds the example policies (and test fixtures) to wasm once per test
//! binary, with the same command the README documents, into a target
//! directory of their own (the outer `cargo test` holds the default one).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const CRATES: &[&str] = &["protect-prefix", "burst-quota", "tiered-billing", "fixture-panic"];

fn built() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target").join("policy-wasm");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&root).args(["build", "--profile", "policy", "--target", "wasm32-unknown-unknown", "--target-dir"]).arg(&target);
        for c in CRATES {
            cmd.args(["-p", c]);
        }
        let status = cmd.status().expect("run cargo to build the example policies");
        assert!(status.success(), "building the example policies failed (is the wasm32-unknown-unknown target installed?)");
        target.join("wasm32-unknown-unknown").join("policy")
    })
}

/// The module bytes of a policy crate, e.g. `protect-prefix`.
pub fn wasm(name: &str) -> Vec<u8> {
    let file = built().join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
}
