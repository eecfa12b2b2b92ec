//! Sharded pub/sub scoped to its tenant, ACL LIST/USERS/CAT with tenants as
//! users, and LOLWUT. (The replies Redis 7.0 also gives are compared with
//! redis-server in tests/differential/sharded_pubsub.redis and
//! server_misc.redis.)

mod common;

use std::time::{Duration, Instant};

use common::{Raw, bulk, err, login, ok, start, tenant};
use ferrite::protocol::Frame;

fn arr(items: &[&str]) -> Frame {
    Frame::Array(items.iter().map(|s| bulk(s)).collect())
}

fn confirm(kind: &str, ch: &str, n: i64) -> Frame {
    Frame::Array(vec![bulk(kind), bulk(ch), Frame::Integer(n)])
}

fn numsub(c: &mut Raw, ch: &str) -> Frame {
    c.cmd(&["PUBSUB", "SHARDNUMSUB", ch])
}

/// Polls until `ch` has `n` shard subscribers as `c` sees them (a
/// disconnect is noticed by the server a moment after the close).
fn wait_numsub(c: &mut Raw, ch: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = numsub(c, ch);
        if got == Frame::Array(vec![bulk(ch), Frame::Integer(n)]) {
            return;
        }
        assert!(Instant::now() < deadline, "{ch}: {got}, wanted {n}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The next thing a subscriber receives is the reply to its PING: nothing
/// was delivered to it before.
fn nothing_received(c: &mut Raw) {
    assert_eq!(c.cmd(&["PING"]), arr(&["pong", ""]));
}

#[test]
fn a_tenants_spublish_reaches_only_its_own_ssubscribers() {
    let h = start();
    let mut sub_a = tenant(&h, "a", &[]);
    let mut sub_b = tenant(&h, "b", &[]);
    let mut pub_a = login(&h, "a");
    let mut pub_b = login(&h, "b");
    let mut admin = Raw::connect(h.addr);

    assert_eq!(sub_a.cmd(&["SSUBSCRIBE", "news"]), confirm("ssubscribe", "news", 1));
    assert_eq!(sub_b.cmd(&["SSUBSCRIBE", "news"]), confirm("ssubscribe", "news", 1));

    // Tenant a's message reaches a's subscriber alone.
    assert_eq!(pub_a.cmd(&["SPUBLISH", "news", "from-a"]), Frame::Integer(1));
    assert_eq!(sub_a.read(), arr(&["smessage", "news", "from-a"]));
    // An ordinary PUBLISH on the same name reaches no shard subscriber.
    assert_eq!(pub_a.cmd(&["PUBLISH", "news", "plain"]), Frame::Integer(0));
    // The operator's space has no such subscriber, and a `__tenant:` prefix
    // in a channel is only a name: it is not rewritten into a tenant's space.
    assert_eq!(admin.cmd(&["SPUBLISH", "news", "admin"]), Frame::Integer(0));
    assert_eq!(admin.cmd(&["SPUBLISH", "__tenant:a:news", "admin"]), Frame::Integer(0));
    assert_eq!(pub_b.cmd(&["SPUBLISH", "news", "from-b"]), Frame::Integer(1));
    assert_eq!(sub_b.read(), arr(&["smessage", "news", "from-b"]));
    nothing_received(&mut sub_a);

    // Each tenant sees its own shard channels only.
    assert_eq!(pub_a.cmd(&["PUBSUB", "SHARDCHANNELS"]), arr(&["news"]));
    assert_eq!(pub_a.cmd(&["PUBSUB", "CHANNELS"]), arr(&[]));
    assert_eq!(admin.cmd(&["PUBSUB", "SHARDCHANNELS"]), arr(&[]));
    let mut sub_b2 = login(&h, "b");
    assert_eq!(sub_b2.cmd(&["SSUBSCRIBE", "only-b"]), confirm("ssubscribe", "only-b", 1));
    assert_eq!(pub_b.cmd(&["PUBSUB", "SHARDCHANNELS"]), arr(&["news", "only-b"]));
    assert_eq!(pub_a.cmd(&["PUBSUB", "SHARDNUMSUB", "only-b"]), Frame::Array(vec![bulk("only-b"), Frame::Integer(0)]));

    // CLIENT LIST counts shard channels in `ssub` and marks the client P.
    let Frame::Bulk(list) = admin.cmd(&["CLIENT", "LIST"]) else { panic!("client list") };
    let list = String::from_utf8(list).unwrap();
    let line = list.lines().find(|l| l.contains("user=a") && l.contains("ssub=1")).expect("a's subscriber");
    assert!(line.contains("flags=P ") && line.contains(" sub=0 psub=0 ssub=1 multi=-1 "), "{line}");

    // A disconnect drops the subscription; so does RESET.
    drop(sub_a);
    wait_numsub(&mut pub_a, "news", 0);
    assert_eq!(sub_b.cmd(&["RESET"]), Frame::Simple("RESET".into()));
    wait_numsub(&mut pub_b, "news", 0);
    assert_eq!(pub_b.cmd(&["SPUBLISH", "news", "x"]), Frame::Integer(0));
}

#[test]
fn leaving_a_tenant_drops_its_shard_subscriptions() {
    let h = start();
    let mut a = tenant(&h, "a", &[]);
    let mut admin = Raw::connect(h.addr);
    // RESP3: the admin may run other commands while subscribed.
    assert!(matches!(admin.cmd(&["HELLO", "3"]), Frame::Map(_)));
    assert_eq!(admin.cmd(&["TENANT.USE", "a"]), ok());
    assert_eq!(admin.cmd(&["SSUBSCRIBE", "ch"]), Frame::Push(vec![bulk("ssubscribe"), bulk("ch"), Frame::Integer(1)]));
    assert_eq!(a.cmd(&["SPUBLISH", "ch", "hi"]), Frame::Integer(1));
    assert_eq!(admin.read(), Frame::Push(vec![bulk("smessage"), bulk("ch"), bulk("hi")]));
    assert_eq!(admin.cmd(&["TENANT.EXIT"]), ok());
    wait_numsub(&mut a, "ch", 0);
    // Back in the global space, the channel of that name is another one.
    assert_eq!(admin.cmd(&["PUBSUB", "SHARDNUMSUB", "ch"]), Frame::Array(vec![bulk("ch"), Frame::Integer(0)]));
}

#[test]
fn acl_users_and_list_show_tenants_to_the_operator_only() {
    let h = start();
    let mut alpha = tenant(&h, "alpha", &[]);
    let mut beta = tenant(&h, "beta", &[]);
    let mut admin = Raw::connect(h.addr);

    assert_eq!(admin.cmd(&["ACL", "USERS"]), arr(&["alpha", "beta", "default"]));
    assert_eq!(
        admin.cmd(&["ACL", "LIST"]),
        arr(&["user alpha on ~* &* +@all -@admin", "user beta on ~* &* +@all -@admin", "user default on nopass ~* &* +@all"])
    );
    // A tenant sees itself, and nothing of the others.
    assert_eq!(alpha.cmd(&["ACL", "USERS"]), arr(&["alpha"]));
    assert_eq!(alpha.cmd(&["ACL", "LIST"]), arr(&["user alpha on ~* &* +@all -@admin"]));
    assert_eq!(beta.cmd(&["ACL", "USERS"]), arr(&["beta"]));
    assert_eq!(beta.cmd(&["ACL", "WHOAMI"]), bulk("beta"));

    // The operator's password is shown as Redis shows it, hashed; no
    // tenant password appears in any form.
    assert_eq!(admin.cmd(&["CONFIG", "SET", "requirepass", "secret"]), ok());
    let Frame::Array(lines) = admin.cmd(&["ACL", "LIST"]) else { panic!("acl list") };
    assert_eq!(lines[2], bulk("user default on #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b ~* &* +@all"));
    for l in &lines {
        let Frame::Bulk(b) = l else { panic!("{l}") };
        assert!(!String::from_utf8_lossy(b).contains("pw"), "{l}");
    }
}

#[test]
fn acl_cat_lists_the_table_by_category() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    let names = |f: Frame| -> Vec<String> {
        let Frame::Array(v) = f else { panic!("{f}") };
        v.into_iter()
            .map(|x| match x {
                Frame::Bulk(b) => String::from_utf8(b).unwrap(),
                other => panic!("{other}"),
            })
            .collect()
    };
    let pubsub = names(c.cmd(&["ACL", "CAT", "pubsub"]));
    for n in ["ssubscribe", "sunsubscribe", "spublish", "publish", "subscribe", "pubsub|channels"] {
        assert!(pubsub.contains(&n.to_string()), "{n} in {pubsub:?}");
    }
    assert!(!pubsub.contains(&"get".to_string()));
    let read = names(c.cmd(&["ACL", "CAT", "READ"]));
    assert!(read.contains(&"get".to_string()) && !read.contains(&"set".to_string()) && !read.contains(&"ping".to_string()));
    assert!(names(c.cmd(&["ACL", "CAT", "transaction"])).contains(&"multi".to_string()));
    // Subcommands by their own categories, as Redis lists them.
    let dangerous = names(c.cmd(&["ACL", "CAT", "dangerous"]));
    assert!(dangerous.contains(&"config|set".to_string()) && !dangerous.contains(&"config".to_string()), "{dangerous:?}");
    assert_eq!(c.cmd(&["ACL", "CAT", "server"]), err("ERR Unknown category 'server'"));
    assert_eq!(names(c.cmd(&["ACL", "CAT"])).len(), 21);
}

#[test]
fn command_reports_shard_channels_as_redis_declares_them() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    let positions = |f: Frame| -> Vec<Frame> {
        let Frame::Array(v) = f else { panic!("{f}") };
        let Frame::Array(info) = &v[0] else { panic!("{v:?}") };
        info[3..6].to_vec()
    };
    let ints = |v: [i64; 3]| v.iter().map(|&i| Frame::Integer(i)).collect::<Vec<_>>();
    assert_eq!(positions(c.cmd(&["COMMAND", "INFO", "ssubscribe"])), ints([1, -1, 1]));
    assert_eq!(positions(c.cmd(&["COMMAND", "INFO", "sunsubscribe"])), ints([1, -1, 1]));
    assert_eq!(positions(c.cmd(&["COMMAND", "INFO", "spublish"])), ints([1, 1, 1]));
    // The operator's SSUBSCRIBE of a `__tenant:` name stays in its own space.
    let mut sub = Raw::connect(h.addr);
    let mut a = tenant(&h, "a", &[]);
    assert_eq!(sub.cmd(&["SSUBSCRIBE", "__tenant:a:x"]), confirm("ssubscribe", "__tenant:a:x", 1));
    assert_eq!(c.cmd(&["PUBSUB", "SHARDCHANNELS"]), arr(&["__tenant:a:x"]));
    assert_eq!(a.cmd(&["PUBSUB", "SHARDCHANNELS"]), arr(&[]));
    assert_eq!(c.cmd(&["SPUBLISH", "__tenant:a:x", "m"]), Frame::Integer(1));
    assert_eq!(sub.read(), arr(&["smessage", "__tenant:a:x", "m"]));
}

#[test]
fn lolwut_names_ferrite_and_checks_its_version_argument() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    let want = format!("Ferrite ver. {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["LOLWUT"][..], &["LOLWUT", "VERSION", "6"], &["LOLWUT", "version", "5", "10", "x"]] {
        let Frame::Bulk(b) = c.cmd(args) else { panic!("{args:?}") };
        let text = String::from_utf8(b).unwrap();
        assert!(text.ends_with(&want) && !text.contains("Redis ver."), "{text:?}");
    }
    assert_eq!(c.cmd(&["LOLWUT", "VERSION", "six"]), err("ERR value is not an integer or out of range"));
}
