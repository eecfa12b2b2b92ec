//! WASM policies end to end: the example policies uploaded through a real
//! connection change eviction, quota decisions and the bill of their tenant
//! alone; hostile modules are refused at upload or contained at run time
//! while every other tenant keeps being served.

mod common;
#[path = "common/policies.rs"]
mod policies;

use common::{Raw, bulk, config, encode, err, ok, start, start_with};
use ferrite::protocol::Frame;
use ferrite::server::ServerHandle;

fn field(f: &Frame, name: &str) -> Frame {
    let Frame::Array(v) = f else { panic!("array: {f}") };
    let i = v.iter().position(|x| x == &bulk(name)).unwrap_or_else(|| panic!("no {name} in {f}"));
    v[i + 1].clone()
}

fn int(f: &Frame, name: &str) -> i64 {
    match field(f, name) {
        Frame::Integer(n) => n,
        other => panic!("{name} is {other}"),
    }
}

fn text(f: &Frame, name: &str) -> String {
    match field(f, name) {
        Frame::Bulk(b) => String::from_utf8(b).unwrap(),
        other => panic!("{name} is {other}"),
    }
}

fn upload(a: &mut Raw, tenant: &str, wasm: &[u8], config: Option<&str>) -> Frame {
    let mut args: Vec<&[u8]> = vec![b"TENANT.UPDATE", tenant.as_bytes(), b"POLICY", wasm];
    if let Some(c) = config {
        args.extend([b"CONFIG".as_slice(), c.as_bytes()]);
    }
    a.send(&encode(args.into_iter()));
    a.read()
}

/// A connection inside `tenant` (an admin that entered it).
fn inside(h: &ServerHandle, tenant: &str) -> Raw {
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["TENANT.USE", tenant]), ok());
    c
}

/// A module with the required exports and `hooks` (WAT text) added.
fn wat_module(extra: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            (import "ferrite" "log" (func $log (param i32 i32 i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "boom: the module gave up")
            (func (export "ferrite_abi_version") (result i32) i32.const 1)
            (func (export "ferrite_alloc") (param i32) (result i32) i32.const 1024)
            {extra})"#
    ))
    .expect("valid WAT")
}

fn evict_hook(body: &str) -> Vec<u8> {
    wat_module(&format!(r#"(func (export "ferrite_evict") (param i32 i32) (result i64) {body})"#))
}

fn policy_info(a: &mut Raw, tenant: &str) -> Frame {
    a.cmd(&["TENANT.POLICY", tenant])
}

/// Writes `n` keys of 100 bytes named `prefix<i>`; returns the error
/// replies (a write refused by a quota) in order.
/// SETs `n` keys; the errors of those refused. A write refused with OOM is
/// tried once more: eviction gives up after 500 us (`TIME_BUDGET`), which a
/// debug build sharing two cores with the other tests can pass.
fn fill(c: &mut Raw, prefix: &str, n: usize) -> Vec<String> {
    let value = "v".repeat(100);
    let mut errors = Vec::new();
    for i in 0..n {
        let set = ["SET", &format!("{prefix}{i}"), &value];
        let reply = match c.cmd(&set) {
            Frame::Error(e) if e.starts_with("OOM") => c.cmd(&set),
            other => other,
        };
        match reply {
            Frame::Simple(_) => {}
            Frame::Error(e) => errors.push(e),
            other => panic!("SET replied {other}"),
        }
    }
    errors
}

fn exists(c: &mut Raw, prefix: &str, n: usize) -> usize {
    (0..n).filter(|i| c.cmd(&["EXISTS", &format!("{prefix}{i}")]) == Frame::Integer(1)).count()
}

#[test]
fn the_eviction_example_protects_its_prefixes_and_only_its_tenant() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    for t in ["shop", "plain"] {
        assert_eq!(a.cmd(&["TENANT.CREATE", t, "MEMORY", "40000", "EVICTION", "allkeys-lru"]), ok());
    }
    assert_eq!(upload(&mut a, "shop", &policies::wasm("protect-prefix"), Some("protect=session:")), ok());
    let info = policy_info(&mut a, "shop");
    assert_eq!(text(&info, "state"), "active");
    assert_eq!(text(&info, "hooks"), "eviction");
    for t in ["shop", "plain"] {
        let mut c = inside(&h, t);
        assert!(fill(&mut c, "session:", 50).is_empty());
        assert!(fill(&mut c, "cache:", 500).is_empty(), "writes keep succeeding by evicting");
        let sessions = exists(&mut c, "session:", 50);
        let evicted = int(&a.cmd(&["TENANT.STATS", t]), "evicted");
        assert!(evicted > 100, "{t} evicted {evicted}");
        if t == "shop" {
            assert_eq!(sessions, 50, "the policy never evicts a protected key");
        } else {
            assert!(sessions < 50, "native LRU (all keys equally idle) evicts sessions too");
        }
    }
    let info = policy_info(&mut a, "shop");
    assert!(int(&info, "calls") > 0);
    assert!(int(&info, "fuel_used") > 0);
    assert_eq!(int(&info, "fallbacks"), 0);
    assert_eq!(text(&policy_info(&mut a, "plain"), "state"), "none");
}

#[test]
fn the_quota_example_grants_a_burst_to_chosen_tenants_only() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    for t in ["acme", "globex", "plain"] {
        assert_eq!(a.cmd(&["TENANT.CREATE", t, "MEMORY", "20000"]), ok());
    }
    let burst = policies::wasm("burst-quota");
    let cfg = "tenants=acme; overage_percent=50; burst_seconds=600";
    for t in ["acme", "globex"] {
        assert_eq!(upload(&mut a, t, &burst, Some(cfg)), ok());
    }
    let mut acme = inside(&h, "acme");
    let errors = fill(&mut acme, "k", 400);
    assert!(errors[0].starts_with("QUOTA tenant 'acme' used its burst: memory"), "{}", errors[0]);
    let used = int(&a.cmd(&["TENANT.INFO", "acme"]), "memory_used");
    assert!((20_000..=30_000 + 300).contains(&used), "acme went over its limit, up to +50%: {used}");

    let mut globex = inside(&h, "globex");
    let errors = fill(&mut globex, "k", 400);
    assert_eq!(errors[0], "QUOTA tenant 'globex' reached its memory limit (20000) and has no burst allowance");
    assert!(int(&a.cmd(&["TENANT.INFO", "globex"]), "memory_used") < 20_000 + 300);

    let mut plain = inside(&h, "plain");
    let errors = fill(&mut plain, "k", 400);
    assert!(errors[0].starts_with("OOM tenant 'plain' is over its memory limit"), "{}", errors[0]);
    // Reads and deletes still work for the tenant the policy refused.
    assert_eq!(acme.cmd(&["GET", "k0"]), bulk(&"v".repeat(100)));
    assert_eq!(acme.cmd(&["DEL", "k0"]), Frame::Integer(1));
}

#[test]
fn the_billing_example_writes_the_tenants_ledger() {
    let mut c = config();
    c.policy.billing_interval_ms = 200;
    let h = start_with(c);
    let mut a = Raw::connect(h.addr);
    for t in ["metered", "plain"] {
        assert_eq!(a.cmd(&["TENANT.CREATE", t]), ok());
    }
    // A dollar per operation, so ten SETs cost exactly ten.
    assert_eq!(upload(&mut a, "metered", &policies::wasm("tiered-billing"), Some("tiers=0:1000000; gb_hour=1")), ok());
    for t in ["metered", "plain"] {
        let mut c = inside(&h, t);
        assert!(fill(&mut c, "k", 10).is_empty());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let items = loop {
        let bill = a.cmd(&["TENANT.BILLING", "metered"]);
        let Frame::Array(items) = field(&bill, "items") else { panic!("items") };
        let ops_billed =
            items.iter().any(|i| matches!(i, Frame::Array(v) if v[0] == bulk("operations tier 1") && v[3] == bulk("10.000000")));
        if ops_billed {
            assert_eq!(field(&bill, "total"), bulk("10.000000"), "memory at $1/GB-hour rounds to 0 here");
            break items;
        }
        assert!(std::time::Instant::now() < deadline, "the billing hook never billed the ops: {bill}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(items.iter().any(|i| matches!(i, Frame::Array(v) if v[0] == bulk("memory") && v[2] == bulk("GB-hours"))));
    // The tenant without a policy keeps the native price list.
    let Frame::Array(native) = field(&a.cmd(&["TENANT.BILLING", "plain"]), "items") else { panic!("items") };
    let names: Vec<_> = native.iter().map(|i| if let Frame::Array(v) = i { v[0].clone() } else { panic!() }).collect();
    assert_eq!(names, [bulk("operations"), bulk("memory"), bulk("bandwidth")]);
}

#[test]
fn bad_uploads_say_what_is_wrong_and_keep_the_old_policy() {
    let mut c = config();
    c.policy.max_module_bytes = 16 << 10;
    let h = start_with(c);
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "t"]), ok());
    let good = evict_hook("i64.const -1");
    assert_eq!(upload(&mut a, "t", &good, None), ok());
    let hash = text(&policy_info(&mut a, "t"), "hash");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"hello, not wasm".to_vec(), "ERR policy module is not a WebAssembly core module (it must start with \\0asm version 1)"),
        (wat_module(&format!(r#"(data (i32.const 4096) "{}")"#, "x".repeat(20_000))), "ERR policy module is 20"),
        (
            wat::parse_str(r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))))"#).unwrap(),
            "ERR policy module imports wasi_snapshot_preview1.fd_write, which Ferrite does not provide (only ferrite.log and ferrite.now_ms)",
        ),
        (
            wat_module(r#"(func (export "ferrite_evict") (param i32) (result i32) i32.const 0)"#),
            "ERR policy module's export 'ferrite_evict' has the wrong type: expected (i32, i32) -> i64",
        ),
        (wat_module(""), "ERR policy module exports no hook (ferrite_evict, ferrite_quota or ferrite_bill)"),
        (
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "ferrite_abi_version") (result i32) i32.const 1))"#)
                .unwrap(),
            "ERR policy module lacks the required export 'ferrite_alloc'",
        ),
        (
            wat::parse_str(
                r#"(module (memory (export "memory") 1)
                    (func (export "ferrite_abi_version") (result i32) i32.const 99)
                    (func (export "ferrite_alloc") (param i32) (result i32) i32.const 64)
                    (func (export "ferrite_quota") (param i32 i32) (result i64) i64.const -1))"#,
            )
            .unwrap(),
            "ERR policy module speaks ABI version 99; this server speaks version 1",
        ),
        (
            // 32 MiB of initial memory, over the 16 MiB cap.
            wat::parse_str(
                r#"(module (memory (export "memory") 512)
                    (func (export "ferrite_abi_version") (result i32) i32.const 1)
                    (func (export "ferrite_alloc") (param i32) (result i32) i32.const 64)
                    (func (export "ferrite_evict") (param i32 i32) (result i64) i64.const -1))"#,
            )
            .unwrap(),
            "ERR policy module failed to start",
        ),
        (
            // A 5M-entry table would reserve 40 MB outside the memory cap.
            wat::parse_str(
                r#"(module (memory (export "memory") 1) (table 5000000 funcref)
                    (func (export "ferrite_abi_version") (result i32) i32.const 1)
                    (func (export "ferrite_alloc") (param i32) (result i32) i32.const 64)
                    (func (export "ferrite_evict") (param i32 i32) (result i64) i64.const -1))"#,
            )
            .unwrap(),
            "ERR policy module failed to start",
        ),
        (policies::wasm("protect-prefix"), "ERR policy module is"), // 37 KB: over this server's 16 KiB cap
    ];
    for (bytes, want) in cases {
        let Frame::Error(e) = upload(&mut a, "t", &bytes, None) else { panic!("{want}: accepted") };
        assert!(e.starts_with(want), "got {e:?}, want {want:?}");
    }
    let info = policy_info(&mut a, "t");
    assert_eq!((text(&info, "state"), text(&info, "hash")), ("active".into(), hash));
}

#[test]
fn a_module_refusing_its_config_is_not_installed() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "t"]), ok());
    let reply = upload(&mut a, "t", &policies::wasm("protect-prefix"), Some("protec=session:"));
    assert_eq!(reply, err("ERR policy module refused its CONFIG: init refused the CONFIG: unknown CONFIG key 'protec' (expected protect)"));
    assert_eq!(text(&policy_info(&mut a, "t"), "state"), "none");
}

/// Runtime-hostile modules: each makes every eviction call fail in its own
/// way. Writes keep succeeding (native eviction decides), the failures are
/// counted by kind, the policy is disabled after `max_failures`, and a
/// neighbour tenant is served throughout.
#[test]
fn hostile_modules_fall_back_to_native_and_get_disabled() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "neighbour"]), ok());
    let mut neighbour = inside(&h, "neighbour");
    assert_eq!(neighbour.cmd(&["SET", "mine", "safe"]), ok());
    let cases = [
        ("spin", evict_hook("(loop $l br $l) i64.const 0"), "out_of_fuel"),
        (
            "grow",
            evict_hook("(loop $l (br_if $l (i32.ne (memory.grow (i32.const 64)) (i32.const -1)))) (loop $m br $m) i64.const 0"),
            "out_of_fuel",
        ),
        (
            "recurse",
            wat_module(
                r#"(func $deep (param i32) (result i32) (call $deep (i32.add (local.get 0) (i32.const 1))))
                   (func (export "ferrite_evict") (param i32 i32) (result i64) (drop (call $deep (i32.const 0))) i64.const 0)"#,
            ),
            "traps",
        ),
        ("trap", evict_hook("(call $log (i32.const 1) (i32.const 16) (i32.const 24)) unreachable"), "traps"),
        ("wild", evict_hook("i64.const 0x7fff000000000010"), "bad_returns"),
        ("garbage", evict_hook("i64.const 0x0000001000000003"), "bad_returns"),
    ];
    for (name, module, counter) in cases {
        assert_eq!(a.cmd(&["TENANT.CREATE", name, "MEMORY", "20000", "EVICTION", "allkeys-random"]), ok());
        assert_eq!(upload(&mut a, name, &module, None), ok(), "{name}");
        let mut c = inside(&h, name);
        assert!(fill(&mut c, "k", 300).is_empty(), "{name}: native eviction kept writes working");
        let info = policy_info(&mut a, name);
        assert!(int(&info, counter) >= 1, "{name}: {info}");
        assert_eq!(text(&info, "state"), "disabled", "{name}: {info}");
        assert!(text(&info, "disabled_reason").starts_with("disabled after 5 consecutive failures"), "{name}: {info}");
        assert_eq!(int(&info, "fallbacks"), 5, "{name}: disabled modules are not called again");
        assert!(int(&a.cmd(&["TENANT.STATS", name]), "evicted") > 0);
        assert_eq!(neighbour.cmd(&["GET", "mine"]), bulk("safe"), "after {name}");
    }
    let trap = policy_info(&mut a, "trap");
    assert!(text(&trap, "last_error").contains("module said: boom: the module gave up"), "{trap}");
    // Re-uploading re-enables.
    assert_eq!(upload(&mut a, "trap", &evict_hook("i64.const -1"), None), ok());
    assert_eq!(text(&policy_info(&mut a, "trap"), "state"), "active");
}

#[test]
fn the_epoch_deadline_stops_a_module_that_fuel_would_not() {
    let mut c = config();
    c.policy.fuel_per_call = u64::MAX / 4;
    c.policy.timeout_ms = 20;
    c.policy.max_failures = 2;
    let h = start_with(c);
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "t", "MEMORY", "20000", "EVICTION", "allkeys-random"]), ok());
    assert_eq!(upload(&mut a, "t", &evict_hook("(loop $l br $l) i64.const 0"), None), ok());
    let mut c = inside(&h, "t");
    assert!(fill(&mut c, "k", 300).is_empty());
    let info = policy_info(&mut a, "t");
    assert_eq!(int(&info, "timeouts"), 2, "{info}");
    assert_eq!(text(&info, "state"), "disabled");
}

#[test]
fn a_guest_panic_message_reaches_the_host() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "t", "MEMORY", "20000", "EVICTION", "allkeys-lru"]), ok());
    assert_eq!(upload(&mut a, "t", &policies::wasm("fixture-panic"), Some("the sky fell")), ok());
    let mut c = inside(&h, "t");
    assert!(fill(&mut c, "k", 300).is_empty());
    let info = policy_info(&mut a, "t");
    let last = text(&info, "last_error");
    assert!(last.contains("panic at") && last.ends_with(": the sky fell)"), "{last}");
}

#[test]
fn none_rollback_and_reconfigure() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "t"]), ok());
    assert_eq!(a.cmd(&["TENANT.UPDATE", "t", "POLICY", "ROLLBACK"]), err("ERR no previous policy to roll back to"));
    // Policies are set by TENANT.UPDATE only, and TENANT.POLICY takes one tenant.
    assert_eq!(
        a.cmd(&["TENANT.LIMITS.SET", "t", "POLICY", "NONE"]),
        err("ERR TENANT.LIMITS.SET takes MEMORY, KEYS, OPS, CONNECTIONS or DATABASES")
    );
    assert_eq!(a.cmd(&["TENANT.POLICY", "t", "extra"]), err("ERR wrong number of arguments for 'tenant.policy' command"));
    assert_eq!(a.cmd(&["TENANT.UPDATE", "t", "CONFIG", "x=1"]), err("ERR the tenant has no policy to configure: upload one with POLICY"));
    assert_eq!(upload(&mut a, "t", &policies::wasm("protect-prefix"), Some("protect=a:")), ok());
    let v1 = text(&policy_info(&mut a, "t"), "hash");
    assert_eq!(upload(&mut a, "t", &policies::wasm("burst-quota"), None), ok());
    let info = policy_info(&mut a, "t");
    assert_eq!(text(&info, "hooks"), "quota");
    assert_ne!(text(&info, "hash"), v1);
    assert_eq!(int(&info, "versions_kept"), 1);
    assert_eq!(a.cmd(&["TENANT.UPDATE", "t", "POLICY", "ROLLBACK"]), ok());
    let info = policy_info(&mut a, "t");
    assert_eq!((text(&info, "hash"), text(&info, "hooks")), (v1.clone(), "eviction".into()));
    assert_eq!(int(&info, "config_bytes"), "protect=a:".len() as i64);
    // CONFIG alone re-initialises the current module.
    assert_eq!(a.cmd(&["TENANT.UPDATE", "t", "CONFIG", "protect=session:,auth:"]), ok());
    assert_eq!(int(&policy_info(&mut a, "t"), "config_bytes"), "protect=session:,auth:".len() as i64);
    assert_eq!(
        a.cmd(&["TENANT.UPDATE", "t", "CONFIG", "nonsense"]),
        err("ERR policy module refused its CONFIG: init refused the CONFIG: CONFIG entry 'nonsense' is not key=value")
    );
    assert_eq!(a.cmd(&["TENANT.UPDATE", "t", "POLICY", "NONE"]), ok());
    assert_eq!(text(&policy_info(&mut a, "t"), "state"), "none");
    assert_eq!(text(&a.cmd(&["TENANT.INFO", "t"]), "policy"), "none");
    assert_eq!(a.cmd(&["TENANT.UPDATE", "t", "POLICY", "ROLLBACK"]), ok());
    assert_eq!(text(&policy_info(&mut a, "t"), "hash"), v1);
}

#[test]
fn a_failed_upload_applies_none_of_the_update() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "t", "MEMORY", "1mb"]), ok());
    a.send(&encode([b"TENANT.UPDATE".as_slice(), b"t", b"MEMORY", b"2mb", b"POLICY", b"junk"].into_iter()));
    assert!(matches!(a.read(), Frame::Error(_)));
    assert_eq!(int(&a.cmd(&["TENANT.INFO", "t"]), "memory_limit"), 1 << 20);
    a.send(&encode([b"TENANT.UPDATE".as_slice(), b"t", b"MEMORY", b"2mb", b"POLICY", &policies::wasm("burst-quota")].into_iter()));
    assert_eq!(a.read(), ok());
    assert_eq!(int(&a.cmd(&["TENANT.INFO", "t"]), "memory_limit"), 2 << 20);
}

#[test]
fn tenants_cannot_upload_but_can_read_their_own_policy() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    for t in ["t", "u"] {
        assert_eq!(a.cmd(&["TENANT.CREATE", t, "PASSWORD", "pw"]), ok());
    }
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["AUTH", "t", "pw"]), ok());
    assert_eq!(
        upload(&mut c, "t", &policies::wasm("burst-quota"), None),
        err("NOPERM tenant 't' has no permissions to run the 'tenant.update' command")
    );
    assert_eq!(text(&c.cmd(&["TENANT.POLICY"]), "state"), "none");
    assert_eq!(c.cmd(&["TENANT.POLICY", "u"]), err("NOPERM tenant 't' may only see its own record"));
}

#[test]
fn a_policy_can_come_from_the_config_file() {
    let dir = std::env::temp_dir().join(format!("ferrite-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("protect.wasm");
    std::fs::write(&file, policies::wasm("protect-prefix")).unwrap();
    let toml = format!(
        "[server]\nport = 0\n[persistence]\nappendonly = false\n[[tenancy.tenants]]\nid = \"shop\"\npolicy = \"{}\"\npolicy_config = \"protect=session:\"\n",
        file.display()
    );
    let h = start_with(ferrite::config::Config::from_toml(&toml).unwrap());
    let mut a = Raw::connect(h.addr);
    let info = policy_info(&mut a, "shop");
    assert_eq!((text(&info, "state"), int(&info, "config_bytes")), ("active".into(), 16));
    drop(h);

    let missing = toml.replace("protect.wasm", "missing.wasm");
    let e = ferrite::server::start_background(ferrite::config::Config::from_toml(&missing).unwrap()).err().unwrap();
    assert!(e.to_string().starts_with("tenancy.tenants[0].policy ("), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_100_kb_module_uploads_while_other_clients_are_served() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "t"]), ok());
    let module = policies::synthetic(100_000);
    let mut args: Vec<&[u8]> = vec![b"TENANT.UPDATE", b"t", b"POLICY", &module];
    a.send(&encode(args.drain(..)));
    // The upload compiles off the event loop: another client is answered
    // before the uploader's reply arrives (checked by order, not by time).
    let mut other = Raw::connect(h.addr);
    assert_eq!(other.cmd(&["PING"]), Frame::Simple("PONG".into()));
    assert_eq!(a.read(), ok());
    assert!(int(&policy_info(&mut a, "t"), "size") >= 100_000);
}

#[test]
fn quota_hooks_run_only_near_a_limit_and_throttle_pauses_the_connection() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "t", "MEMORY", "20000"]), ok());
    // Always answers Throttle { ms: 300 }: tag 3, then 300 as u32 LE, at offset 32.
    let throttle = wat_module(
        r#"(data (i32.const 32) "\03\2c\01\00\00")
           (func (export "ferrite_quota") (param i32 i32) (result i64) i64.const 0x0000002000000005)"#,
    );
    assert_eq!(upload(&mut a, "t", &throttle, None), ok());
    let mut c = inside(&h, "t");
    assert!(fill(&mut c, "small", 10).is_empty());
    assert_eq!(int(&policy_info(&mut a, "t"), "calls"), 0, "below 80% of every limit no WASM runs");
    // Past 80% of the memory limit every write asks the module, which
    // throttles: the write succeeds, then the connection pauses before
    // reading the next request.
    // (Admission counts what a write adds: 17 KB more would not fit.)
    let big = "x".repeat(15_500);
    assert_eq!(c.cmd(&["SET", "big", &big]), ok());
    assert_eq!(c.cmd(&["SET", "throttled", "1"]), ok());
    let start = std::time::Instant::now();
    assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
    assert!(start.elapsed() >= std::time::Duration::from_millis(250), "paused {:?}", start.elapsed());
    assert!(int(&policy_info(&mut a, "t"), "calls") >= 1);
}
