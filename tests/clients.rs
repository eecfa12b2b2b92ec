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

/// BullMQ (Node): a queue, a worker with concurrency, delayed, prioritised,
/// bulk and retried jobs, the queue's event stream (XREAD BLOCK), pause and
/// resume, and obliterate, all through one tenant's credentials, as
/// against redis-server (its Lua scripts use cmsgpack and many commands).
#[test]
fn bullmq_runs_jobs_as_a_tenant() {
    let h = common::start();
    assert_eq!(Raw::connect(h.addr).cmd(&["TENANT.CREATE", "queues", "PASSWORD", "pw", "OPS", "100000"]), ok());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/bullmq/tenant.js");
    let out = Command::new("node").args([script, &h.addr.port().to_string(), "queues", "pw"]).output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bullmq failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "completed 24 failed 1 waiting 0 delayed 0",
        "events 24",
        "result 42",
        "attempts 2 reason boom",
        "paused waiting 1",
        "resumed completed 25",
        "obliterated 0",
    ] {
        assert!(stdout.lines().any(|l| l == line), "missing {line:?} in:\n{stdout}");
    }
    assert_eq!(Raw::connect(h.addr).cmd(&["DBSIZE"]), ferrite::protocol::Frame::Integer(0));
}
