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

/// A valid eviction policy of about `bytes` bytes of real code (many small
/// functions), for measuring what an upload of that size costs.
pub fn synthetic(bytes: usize) -> Vec<u8> {
    let mut wat = String::from(
        r#"(module (memory (export "memory") 1)
           (func (export "ferrite_abi_version") (result i32) i32.const 1)
           (func (export "ferrite_alloc") (param i32) (result i32) i32.const 1024)
           (func (export "ferrite_evict") (param i32 i32) (result i64) i64.const -1)"#,
    );
    let mut i = 0;
    loop {
        let m = wat::parse_str(format!("{wat})")).expect("valid WAT");
        if m.len() >= bytes {
            return m;
        }
        for _ in 0..50 {
            wat.push_str(&format!("(func $f{i} (export \"f{i}\") (param i32 i32) (result i32)"));
            for k in 0..12 {
                wat.push_str(&format!(
                    " local.get {} i32.const {} i32.mul local.get {} i32.xor local.set 0",
                    k % 2,
                    i * 31 + k,
                    (k + 1) % 2
                ));
            }
            wat.push_str(" local.get 0)");
            i += 1;
        }
    }
}
