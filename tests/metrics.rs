//! What operators watch (issue 17): the Prometheus endpoint (checked by
//! `promtool check metrics`), quota alerts on `__ferrite__:tenant-events`,
//! a tenant's own `# Tenant` INFO section, the ALERTS option, and the
//! alerting rules and dashboard shipped in the repository.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Process, Raw, bulk, data_dir, field, info_field, login, ok, tenant};
use ferrite::config::Config;
use ferrite::protocol::Frame;
use ferrite::server::ServerHandle;

/// A server with the endpoint on a free port and quota sweeps every 100 ms.
fn config_with_metrics() -> Config {
    let mut c = common::config();
    c.metrics.listen = Some("127.0.0.1:0".into());
    c.policy.billing_interval_ms = 100;
    c
}

/// `GET path` over HTTP/1.1: (status, head, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("the endpoint accepts");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: ferrite\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).expect("text");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    (status, head.to_string(), body.to_string())
}

fn scrape(h: &ServerHandle) -> String {
    let (status, head, body) = get(h.metrics_addr().expect("the endpoint is configured"), "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body
}

/// `promtool check metrics` on `text`: Ok, or what it printed.
fn promtool_check(text: &str) -> Result<(), String> {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test.sh installs Debian's prometheus package)");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && said.trim().is_empty() { Ok(()) } else { Err(said) }
}

/// The value of the one sample `series` (name and labels as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).map(|v| v.parse().expect("a number")))
}

fn has_series(text: &str, series: &str) -> bool {
    sample(text, series).is_some()
}

#[test]
fn the_endpoint_is_off_unless_configured() {
    let h = common::start();
    assert_eq!(h.metrics_addr(), None);
    let e = Config::from_toml("[metrics]\nlisten = \"localhost\"\n").unwrap_err().to_string();
    assert!(e.contains("metrics"), "{e}");
    let e = Config::from_toml("[metrics]\nlisen = \"127.0.0.1:9121\"\n").unwrap_err().to_string();
    assert!(e.contains("lisen"), "{e}");
    let c = Config::from_toml("[metrics]\nlisten = \"127.0.0.1:9121\"\nmax_tenants = 5\n").unwrap();
    assert_eq!((c.metrics.listen.as_deref(), c.metrics.max_tenants), (Some("127.0.0.1:9121"), 5));
    assert_eq!(Config::default().metrics.listen, None);
}

#[test]
fn a_scrape_is_valid_prometheus_text_with_server_and_tenant_series() {
    let dir = data_dir("metrics-scrape");
    let mut c = config_with_metrics();
    c.persistence.appendonly = true;
    c.persistence.dir = dir.clone();
    let h = common::start_with(c);
    let mut acme = tenant(&h, "acme", &["KEYS", "3", "MEMORY", "1mb", "CONNECTIONS", "7"]);
    for k in ["a", "b", "c"] {
        assert_eq!(acme.cmd(&["SET", k, "v"]), ok());
    }
    assert!(matches!(acme.cmd(&["SET", "d", "v"]), Frame::Error(e) if e.contains("key limit")));
    assert_eq!(acme.cmd(&["GET", "a"]), bulk("v"));
    let mut admin = Raw::connect(h.addr);
    let mut idle = tenant(&h, "idle", &[]);
    assert_eq!(admin.cmd(&["TENANT.SUSPEND", "idle"]), ok());
    assert!(matches!(idle.cmd(&["GET", "x"]), Frame::Error(e) if e.contains("suspended")));
    assert_eq!(admin.cmd(&["SET", "global", "1"]), ok());

    let text = scrape(&h);
    promtool_check(&text).unwrap_or_else(|e| panic!("promtool refused the scrape:\n{e}"));
    // The check can fail: a broken line is refused.
    assert!(promtool_check(&format!("{text}not a metric line\n")).is_err());

    for name in ["redis_connected_clients", "redis_memory_used_bytes", "redis_uptime_in_seconds"] {
        assert!(sample(&text, name).is_some(), "{name} in\n{text}");
    }
    assert!(sample(&text, "redis_commands_processed_total").unwrap() >= 8.0);
    assert_eq!(sample(&text, "redis_keyspace_hits_total"), Some(1.0));
    assert_eq!(sample(&text, "redis_aof_enabled"), Some(1.0));
    assert_eq!(sample(&text, "redis_aof_last_bgrewrite_status"), Some(1.0));
    assert_eq!(sample(&text, "redis_aof_rewrite_in_progress"), Some(0.0));
    assert_eq!(sample(&text, "redis_db_keys{db=\"db0\"}"), Some(1.0));
    assert!(has_series(&text, "redis_commands_total{cmd=\"set\"}"));
    assert_eq!(sample(&text, "ferrite_tenants"), Some(2.0));
    assert_eq!(sample(&text, "ferrite_tenant_keys{tenant=\"acme\"}"), Some(3.0));
    assert_eq!(sample(&text, "ferrite_tenant_keys_limit{tenant=\"acme\"}"), Some(3.0));
    assert_eq!(sample(&text, "ferrite_tenant_memory_limit_bytes{tenant=\"acme\"}"), Some(1_048_576.0));
    assert!(sample(&text, "ferrite_tenant_memory_used_bytes{tenant=\"acme\"}").unwrap() > 0.0);
    assert_eq!(sample(&text, "ferrite_tenant_connections{tenant=\"acme\"}"), Some(1.0));
    assert_eq!(sample(&text, "ferrite_tenant_connections_limit{tenant=\"acme\"}"), Some(7.0));
    assert_eq!(sample(&text, "ferrite_tenant_commands_total{tenant=\"acme\",class=\"write\"}"), Some(4.0));
    assert_eq!(sample(&text, "ferrite_tenant_commands_total{tenant=\"acme\",class=\"read\"}"), Some(1.0));
    assert_eq!(sample(&text, "ferrite_tenant_refused_total{tenant=\"acme\",reason=\"keys\"}"), Some(1.0));
    assert_eq!(sample(&text, "ferrite_tenant_refused_total{tenant=\"acme\",reason=\"memory\"}"), Some(0.0));
    assert_eq!(sample(&text, "ferrite_tenant_refused_total{tenant=\"idle\",reason=\"state\"}"), Some(1.0));
    assert_eq!(sample(&text, "ferrite_tenant_info{tenant=\"idle\",tier=\"free\",state=\"suspended\"}"), Some(1.0));
    assert_eq!(sample(&text, "ferrite_tenant_evicted_keys_total{tenant=\"acme\",by=\"policy\"}"), Some(0.0));
    assert_eq!(sample(&text, "ferrite_tenant_billing_operations{tenant=\"acme\"}"), Some(5.0));
    assert!(has_series(&text, "ferrite_tenant_billing_amount{tenant=\"acme\",currency=\"USD\"}"));
    // Only tenants with a policy module have policy series.
    assert!(!text.contains("ferrite_tenant_policy_calls_total{"), "{text}");

    // Every series the rules and the dashboard use is one the endpoint serves.
    let served: BTreeSet<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    for file in ["alerts/ferrite.rules.yml", "dashboards/ferrite.json"] {
        let used = std::fs::read_to_string(file).unwrap();
        let names: BTreeSet<&str> = used
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ferrite_") || w.starts_with("redis_"))
            .collect();
        assert!(!names.is_empty(), "{file} names no series");
        for n in names {
            assert!(served.contains(n), "{file} uses {n}, which no scrape serves");
        }
    }

    assert_eq!(get(h.metrics_addr().unwrap(), "/nothing").0, 404);
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn max_tenants_keeps_the_biggest_by_memory() {
    let mut c = config_with_metrics();
    c.metrics.max_tenants = 2;
    let h = common::start_with(c);
    let value = "x".repeat(10_000);
    for (id, keys) in [("t1", 1), ("t2", 4), ("t3", 2), ("t4", 3)] {
        let mut t = tenant(&h, id, &[]);
        for k in 0..keys {
            assert_eq!(t.cmd(&["SET", &k.to_string(), &value]), ok());
        }
    }
    let text = scrape(&h);
    let kept: Vec<&str> = ["t1", "t2", "t3", "t4"]
        .into_iter()
        .filter(|id| has_series(&text, &format!("ferrite_tenant_memory_used_bytes{{tenant=\"{id}\"}}")))
        .collect();
    assert_eq!(kept, ["t2", "t4"]);
    assert!(!text.contains("tenant=\"t1\""), "{text}");
    assert_eq!(sample(&text, "ferrite_metrics_tenants_omitted"), Some(2.0));
    assert_eq!(sample(&text, "ferrite_tenants"), Some(4.0));
    promtool_check(&text).unwrap();
}

#[test]
fn the_flag_serves_metrics_from_the_binary() {
    let dir = data_dir("metrics-bin");
    // Two different free ports: both held while the second is picked.
    let held: Vec<_> = (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let [port, mport] = [0, 1].map(|i| held[i].local_addr().unwrap().port());
    drop(held);
    let listen = format!("127.0.0.1:{mport}");
    let _p = Process::ferrite(port, &dir, &["--appendonly", "no", "--metrics-listen", &listen]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "the endpoint never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _, text) = get(listen.parse().unwrap(), "/metrics");
    assert_eq!(status, 200);
    assert_eq!(sample(&text, "redis_aof_enabled"), Some(0.0));
    promtool_check(&text).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The next message on the events channel within `wait`, as JSON text.
fn next_event(sub: &mut redis::PubSub<'_>, wait: Duration) -> Option<String> {
    sub.set_read_timeout(Some(wait)).unwrap();
    match sub.get_message() {
        Ok(m) => Some(m.get_payload::<String>().unwrap()),
        Err(e) if e.is_timeout() => None,
        Err(e) => panic!("{e}"),
    }
}

fn json_field<'a>(event: &'a str, name: &str) -> &'a str {
    let rest = event.split_once(&format!("\"{name}\":")).unwrap_or_else(|| panic!("{name} in {event}")).1;
    rest.split([',', '}']).next().unwrap().trim_matches('"')
}

#[test]
fn alerts_arrive_once_per_crossing_and_again_after_falling_back() {
    let h = common::start_with(config_with_metrics());
    let mut admin_conn = common::client(&h);
    let mut sub = admin_conn.as_pubsub();
    sub.subscribe("__ferrite__:tenant-events").unwrap();
    // 20 keys: each key is 5 points.
    let mut t = tenant(&h, "shop", &["KEYS", "20"]);
    // A tenant subscribing to the same name hears nothing: the channel is the admin's.
    let mut spy = login(&h, "shop");
    assert!(matches!(spy.cmd(&["SUBSCRIBE", "__ferrite__:tenant-events"]), Frame::Array(_)));
    let set = |t: &mut Raw, range: std::ops::Range<u32>| range.for_each(|i| assert_eq!(t.cmd(&["SET", &format!("k{i}"), "v"]), ok()));
    let del =
        |t: &mut Raw, range: std::ops::Range<u32>| range.for_each(|i| assert_eq!(t.cmd(&["DEL", &format!("k{i}")]), Frame::Integer(1)));
    // Longer than a few sweeps (every 100 ms here), so each level is seen.
    let quiet = Duration::from_millis(500);
    let wait = Duration::from_secs(5);

    set(&mut t, 0..14);
    assert_eq!(next_event(&mut sub, quiet), None, "70% is under every threshold");
    set(&mut t, 14..16);
    let e = next_event(&mut sub, wait).expect("80% of the keys");
    assert_eq!(
        [json_field(&e, "tenant"), json_field(&e, "resource"), json_field(&e, "used"), json_field(&e, "limit")],
        ["shop", "keys", "16", "20"],
        "{e}"
    );
    assert_eq!((json_field(&e, "threshold"), json_field(&e, "percent")), ("80", "80.00"), "{e}");
    assert!(json_field(&e, "time").parse::<u64>().unwrap() > 1_600_000_000_000, "{e}");
    // Staying above sends nothing more; nor does a dip to 75% and back (hysteresis).
    assert_eq!(next_event(&mut sub, quiet), None);
    del(&mut t, 15..16);
    assert_eq!(next_event(&mut sub, quiet), None);
    set(&mut t, 15..16);
    assert_eq!(next_event(&mut sub, quiet), None, "a dip to 75% re-armed 80%");
    set(&mut t, 16..18);
    let e = next_event(&mut sub, wait).expect("90%");
    assert_eq!((json_field(&e, "threshold"), json_field(&e, "used")), ("90", "18"), "{e}");
    // Below 75%: both re-arm; back to 80%: one event again.
    del(&mut t, 14..18);
    assert_eq!(next_event(&mut sub, quiet), None);
    set(&mut t, 14..16);
    let e = next_event(&mut sub, wait).expect("80% again");
    assert_eq!(json_field(&e, "threshold"), "80", "{e}");
    assert_eq!(next_event(&mut sub, quiet), None);

    // The tenant's own thresholds: 50% is crossed at once (they re-arm on change).
    assert_eq!(Raw::connect(h.addr).cmd(&["TENANT.UPDATE", "shop", "ALERTS", "50"]), ok());
    let e = next_event(&mut sub, wait).expect("own threshold");
    assert_eq!(json_field(&e, "threshold"), "50", "{e}");
    // Connections count too: its two are half of a limit of 4.
    assert_eq!(Raw::connect(h.addr).cmd(&["TENANT.LIMITS.SET", "shop", "CONNECTIONS", "4"]), ok());
    let e = next_event(&mut sub, wait).expect("connections");
    assert_eq!((json_field(&e, "resource"), json_field(&e, "used"), json_field(&e, "limit")), ("connections", "2", "4"), "{e}");
    assert!(spy.stream.set_read_timeout(Some(Duration::from_millis(200))).is_ok());
    let mut buf = [0u8; 64];
    assert!(spy.stream.read(&mut buf).is_err(), "the tenant heard an admin event");

    // Counted where operators look: INFO's # Tenant section and the scrape.
    let Frame::Bulk(info) = t.cmd(&["INFO", "tenant"]) else { panic!("info") };
    let info = String::from_utf8(info).unwrap();
    assert_eq!(info_field(&info, "tenant_alerts_keys").as_deref(), Some("4"), "{info}");
    assert_eq!(info_field(&info, "tenant_alerts_connections").as_deref(), Some("1"), "{info}");
    let text = scrape(&h);
    assert_eq!(sample(&text, "ferrite_tenant_quota_alerts_total{tenant=\"shop\",resource=\"keys\"}"), Some(4.0));
    assert_eq!(sample(&text, "ferrite_tenant_quota_alerts_total{tenant=\"shop\",resource=\"memory\"}"), Some(0.0));
}

#[test]
fn a_tenant_sees_its_own_usage_in_info() {
    let h = common::start();
    let mut t = tenant(&h, "acme", &["KEYS", "4", "OPS", "50000", "TIER", "pro"]);
    assert_eq!(t.cmd(&["SET", "a", "1"]), ok());
    assert_eq!(t.cmd(&["SET", "b", "2"]), ok());
    for k in ["c", "d", "e"] {
        t.cmd(&["SET", k, "3"]);
    }
    let Frame::Bulk(all) = t.cmd(&["INFO"]) else { panic!("info") };
    let all = String::from_utf8(all).unwrap();
    assert!(all.contains("\r\n# Tenant\r\n"), "{all}");
    let Frame::Bulk(info) = t.cmd(&["INFO", "tenant"]) else { panic!("info") };
    let info = String::from_utf8(info).unwrap();
    assert!(info.starts_with("# Tenant\r\n") && !info.contains("# Memory"), "{info}");
    let f = |name: &str| info_field(&info, name).unwrap_or_else(|| panic!("{name} in {info}"));
    assert_eq!(f("tenant_id"), "acme");
    assert_eq!(f("tenant_tier"), "pro");
    assert_eq!(f("tenant_state"), "active");
    assert_eq!((f("tenant_keys"), f("tenant_key_limit"), f("tenant_keys_perc")), ("4".into(), "4".into(), "100.00%".into()));
    assert_eq!(f("tenant_ops_limit"), "50000");
    assert_eq!(f("tenant_connections"), "1");
    assert_eq!(f("tenant_refused_keys"), "1");
    assert_eq!(f("tenant_refused_rate"), "0");
    assert_eq!(f("tenant_alert_thresholds"), "80,90,100");
    assert!(f("tenant_memory_used").parse::<u64>().unwrap() > 0);
    // The operator's own INFO has no such section, and no blank line for it.
    let Frame::Bulk(admin) = Raw::connect(h.addr).cmd(&["INFO", "tenant"]) else { panic!("info") };
    assert!(admin.is_empty());
    let Frame::Bulk(admin) = Raw::connect(h.addr).cmd(&["INFO", "keyspace", "tenant"]) else { panic!("info") };
    assert_eq!(String::from_utf8(admin).unwrap(), "# Keyspace\r\n");
    // ... until it enters the tenant.
    let mut op = Raw::connect(h.addr);
    assert_eq!(op.cmd(&["TENANT.USE", "acme"]), ok());
    let Frame::Bulk(inside) = op.cmd(&["INFO", "tenant"]) else { panic!("info") };
    assert!(String::from_utf8(inside).unwrap().contains("tenant_id:acme"));
}

#[test]
fn the_alerts_option_is_checked_shown_and_kept() {
    let dir = data_dir("metrics-alerts");
    let mut c = common::config();
    c.persistence.appendonly = true;
    c.persistence.dir = dir.clone();
    let h = common::start_with(c.clone());
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "acme", "ALERTS", "90,70"]), ok());
    for bad in ["0", "101", "abc", "1,2,3,4,5,6,7,8,9", "70,", ""] {
        let Frame::Error(e) = a.cmd(&["TENANT.UPDATE", "acme", "ALERTS", bad]) else { panic!("{bad:?} accepted") };
        assert!(e.starts_with("ERR invalid ALERTS"), "{e}");
    }
    let Frame::Error(e) = a.cmd(&["TENANT.LIMITS.SET", "acme", "ALERTS", "50"]) else { panic!("LIMITS.SET took ALERTS") };
    assert!(e.contains("MEMORY, KEYS"), "{e}");
    let info = |a: &mut Raw| {
        let i = a.cmd(&["TENANT.INFO", "acme"]);
        (field(&i, "alerts"), field(&i, "alert_thresholds"))
    };
    assert_eq!(info(&mut a), (bulk("70,90"), bulk("70,90")));
    assert_eq!(a.cmd(&["TENANT.UPDATE", "acme", "ALERTS", "DEFAULT"]), ok());
    assert_eq!(info(&mut a), (bulk("default"), bulk("80,90,100")));
    assert_eq!(a.cmd(&["TENANT.UPDATE", "acme", "ALERTS", "none"]), ok());
    assert_eq!(info(&mut a), (bulk("none"), bulk("none")));
    assert_eq!(a.cmd(&["TENANT.UPDATE", "acme", "ALERTS", "60", "PASSWORD", "pw"]), ok());
    // A tenant sees its thresholds but may not change them.
    let mut t = login(&h, "acme");
    assert_eq!(field(&t.cmd(&["TENANT.INFO"]), "alerts"), bulk("60"));
    let Frame::Error(e) = t.cmd(&["TENANT.UPDATE", "acme", "ALERTS", "10"]) else { panic!("a tenant changed its thresholds") };
    assert!(e.starts_with("NOPERM"), "{e}");
    drop(t);
    drop(a);
    drop(h);
    // The log keeps it...
    let h = common::start_with(c.clone());
    let mut a = Raw::connect(h.addr);
    assert_eq!(info(&mut a), (bulk("60"), bulk("60")));
    // ... and so does a snapshot.
    assert_eq!(a.cmd(&["SAVE"]), ok());
    drop(a);
    drop(h);
    let h = common::start_with(c);
    assert_eq!(info(&mut Raw::connect(h.addr)), (bulk("60"), bulk("60")));
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn alert_thresholds_move_with_the_tenant() {
    let a = common::start();
    let b = common::start();
    let _t = tenant(&a, "acme", &["ALERTS", "55,65"]);
    let report = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &b.addr.to_string()]);
    assert!(matches!(report, Frame::Array(_) | Frame::Map(_)), "{report}");
    let i = Raw::connect(b.addr).cmd(&["TENANT.INFO", "acme"]);
    assert_eq!(field(&i, "alerts"), bulk("55,65"));
}

#[test]
fn the_alerting_rules_load_and_fire() {
    let check = Command::new("promtool").args(["check", "rules", "alerts/ferrite.rules.yml"]).output().expect("promtool");
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let test = Command::new("promtool").args(["test", "rules", "alerts/ferrite.rules.test.yml"]).output().expect("promtool");
    assert!(test.status.success(), "{}{}", String::from_utf8_lossy(&test.stdout), String::from_utf8_lossy(&test.stderr));
}
