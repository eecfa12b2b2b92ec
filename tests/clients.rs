//! Real client libraries against Ferrite as a tenant, as a new user would
//! run them (the README's test command installs them: see scripts/test.sh).

mod common;

use std::process::Command;

use common::{Raw, ok};

/// RQ enqueues a job, a burst worker runs it, and the job's result (kept
/// in a stream) reads back, all through one tenant's credentials.
#[test]
fn rq_runs_a_job_and_reads_its_result_as_a_tenant() {
    let h = common::start();
    assert_eq!(Raw::connect(h.addr).cmd(&["TENANT.CREATE", "jobs", "PASSWORD", "pw"]), ok());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/rq_tenant.py");
    let out = Command::new("python3").args([script, &h.addr.port().to_string(), "jobs", "pw"]).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rq failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("status finished") && stdout.contains("result 5"), "{stdout}");
    // Everything RQ wrote is the tenant's: the global keyspace has nothing.
    assert_eq!(Raw::connect(h.addr).cmd(&["DBSIZE"]), ferrite::protocol::Frame::Integer(0));
}
