//! Many nodes, one tenant directory in a real etcd (issue 16): nodes
//! register and see each other, a node that leaves or dies is seen dead,
//! tenant records change only by compare-and-swap, and an etcd restart is
//! survived without restarting any node.
//!
//! Each test starts its own etcd (`/usr/bin/etcd`; the README's test script
//! installs it) on free loopback ports with its data in a temporary folder.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Raw, data_dir, free_port};
use ferrite::cluster::{DirError, Directory};
use ferrite::protocol::Frame;
use ferrite::server::ServerHandle;

/// An etcd member on loopback ports, killed (and its data removed) on drop.
struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client: u16,
    peer: u16,
}

impl Etcd {
    fn start(name: &str) -> Etcd {
        let mut e = Etcd::unstarted(name);
        e.launch();
        e
    }

    /// Ports and a folder, but no etcd yet.
    fn unstarted(name: &str) -> Etcd {
        Etcd { child: None, dir: data_dir(&format!("etcd-{name}")), client: free_port(), peer: free_port() }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// Starts etcd on this member's ports and data, and waits until it
    /// reports itself healthy (it has a leader and answers requests).
    fn launch(&mut self) {
        let (c, p) = (format!("http://127.0.0.1:{}", self.client), format!("http://127.0.0.1:{}", self.peer));
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir", self.dir.to_str().unwrap()])
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args(["--listen-peer-urls", &p, "--initial-advertise-peer-urls", &p])
            .args(["--initial-cluster", &format!("t={p}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd: {e} (scripts/test.sh installs etcd-server)"));
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.client).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if healthy(addr) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy on {addr}");
    }

    /// SIGKILL, and wait for it to be gone.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// etcd's `/health`: `{"health":"true"}` once it has a leader.
fn healthy(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

fn node(etcd: &Etcd, id: &str) -> ServerHandle {
    let mut c = common::config();
    c.cluster.node_id = id.into();
    c.cluster.etcd = vec![etcd.endpoint()];
    common::start_with(c)
}

fn directory(h: &ServerHandle) -> std::sync::Arc<Directory> {
    h.state.cluster.get().expect("a cluster node has a directory").clone()
}

/// One row of TENANT.NODES (RESP2: field/value pairs).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: String,
    address: String,
    alive: bool,
    tenants: i64,
    memory_free: i64,
}

fn nodes(addr: SocketAddr) -> Vec<Row> {
    let reply = Raw::connect(addr).cmd(&["TENANT.NODES"]);
    let Frame::Array(rows) = &reply else { panic!("TENANT.NODES: {reply}") };
    rows.iter()
        .map(|r| {
            let text = |name| match common::field(r, name) {
                Frame::Bulk(b) => String::from_utf8(b).unwrap(),
                f => panic!("{name}: {f}"),
            };
            let int = |name| match common::field(r, name) {
                Frame::Integer(n) => n,
                f => panic!("{name}: {f}"),
            };
            Row {
                id: text("id"),
                address: text("address"),
                alive: int("alive") == 1,
                tenants: int("tenants"),
                memory_free: int("memory_free"),
            }
        })
        .collect()
}

/// Polls `f` until it holds, for at most `limit`; returns how long it took.
fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Whether the node at `addr` sees exactly `alive` (id, address) alive.
fn sees_alive(addr: SocketAddr, alive: &[(&str, SocketAddr)]) -> bool {
    let rows = nodes(addr);
    let up: Vec<(String, String)> = rows.iter().filter(|r| r.alive).map(|r| (r.id.clone(), r.address.clone())).collect();
    let want: Vec<(String, String)> = alive.iter().map(|(id, a)| (id.to_string(), a.to_string())).collect();
    up == want
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn three_nodes_register_and_see_each_other() {
    let etcd = Etcd::start("three");
    // n3 has a maxmemory: what it may still take is counted from that.
    let mut c3 = common::config();
    (c3.cluster.node_id, c3.cluster.etcd, c3.server.maxmemory) = ("n3".into(), vec![etcd.endpoint()], 100 << 20);
    let hs = [node(&etcd, "n1"), node(&etcd, "n2"), common::start_with(c3)];
    let all = [("n1", hs[0].addr), ("n2", hs[1].addr), ("n3", hs[2].addr)];
    for h in &hs {
        eventually("every node sees all three alive", Duration::from_secs(10), || sees_alive(h.addr, &all));
        for row in nodes(h.addr) {
            assert!(row.memory_free > 0, "{row:?} publishes its free memory");
            assert!(row.id != "n3" || row.memory_free <= 100 << 20, "{row:?}: at most its maxmemory");
            assert_eq!(row.tenants, 0);
        }
    }
    // An admin command: a tenant is refused it.
    let mut t = common::tenant(&hs[0], "acme", &[]);
    assert!(matches!(t.cmd(&["TENANT.NODES"]), Frame::Error(_)));
    assert!(matches!(t.cmd(&["TENANT.LOCATE", "acme"]), Frame::Error(_)));
    // Refused where there is no cluster.
    let single = common::start();
    let e = Raw::connect(single.addr).cmd(&["TENANT.NODES"]);
    assert!(matches!(&e, Frame::Error(m) if m.contains("not part of a cluster")), "{e}");
}

#[test]
fn a_node_that_leaves_or_dies_is_seen_dead() {
    let etcd = Etcd::start("dead");
    let (n1, n2) = (node(&etcd, "n1"), node(&etcd, "n2"));
    // n3 is a process of its own, so it can be killed with SIGKILL.
    let port = free_port();
    let dir = data_dir("cluster-dead-n3");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ferrite.toml");
    std::fs::write(&conf, format!("[cluster]\nnode_id = \"n3\"\netcd = [\"{}\"]\n", etcd.endpoint())).unwrap();
    let mut n3 = common::Process::ferrite(port, &dir, &["--appendonly", "no", "--config", conf.to_str().unwrap()]);
    let all = [("n1", n1.addr), ("n2", n2.addr), ("n3", n3.addr)];
    eventually("all three alive", Duration::from_secs(10), || sees_alive(n1.addr, &all) && sees_alive(n2.addr, &all));

    // Killed: its lease expires (TTL 3 s) and the others see it dead.
    n3.kill();
    let took = eventually("n3 seen dead after SIGKILL", Duration::from_secs(10), || {
        sees_alive(n1.addr, &all[..2]) && sees_alive(n2.addr, &all[..2])
    });
    eprintln!("killed node seen dead after {took:?}");
    // Still listed, as dead, with its last address.
    let row = nodes(n1.addr).into_iter().find(|r| r.id == "n3").expect("n3 still known");
    assert!(!row.alive && row.address == n3.addr.to_string(), "{row:?}");

    // Shut down cleanly: it revokes its lease, so it is seen dead at once.
    let n2_addr = n2.addr;
    drop(n2);
    let took = eventually("n2 seen dead after shutdown", Duration::from_secs(2), || sees_alive(n1.addr, &all[..1]));
    eprintln!("node shut down seen dead after {took:?}");
    assert!(nodes(n1.addr).iter().any(|r| r.id == "n2" && !r.alive && r.address == n2_addr.to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tenant_records_change_only_by_compare_and_swap() {
    let etcd = Etcd::start("cas");
    let hs = [node(&etcd, "n1"), node(&etcd, "n2"), node(&etcd, "n3")];
    let (d1, d2, d3) = (directory(&hs[0]), directory(&hs[1]), directory(&hs[2]));

    // Created once; a second owner is refused, naming the first.
    block_on(d1.create_tenant("acme", "n1")).expect("first create");
    assert_eq!(block_on(d2.create_tenant("acme", "n2")), Err(DirError::Exists { id: "acme".into(), owner: "n1".into() }));

    // Two nodes racing to create the same tenant: exactly one wins.
    let (a, b) = block_on(async { tokio::join!(d1.create_tenant("race", "n1"), d2.create_tenant("race", "n2")) });
    assert!(a.is_ok() != b.is_ok(), "exactly one create wins: {a:?} {b:?}");

    // Every node's view follows through the watch.
    for d in [&d1, &d2, &d3] {
        eventually("acme in every view", Duration::from_secs(5), || d.locate("acme").is_some_and(|(l, _)| l.record.owner == "n1"));
    }
    let (stale, _) = d3.locate("acme").unwrap();
    assert_eq!(stale.record.epoch, 1);

    // A move conditioned on what n2 read succeeds once; the same stale read
    // cannot move it again (someone changed it meanwhile).
    let (read, _) = d2.locate("acme").unwrap();
    block_on(d2.move_tenant("acme", &read, "n2")).expect("move");
    assert_eq!(block_on(d3.move_tenant("acme", &stale, "n3")), Err(DirError::Changed { id: "acme".into(), owner: "n2".into() }));
    eventually("the move reaches n3's view", Duration::from_secs(5), || {
        d3.locate("acme").is_some_and(|(l, _)| l.record.owner == "n2" && l.record.epoch == 2)
    });

    // TENANT.LOCATE on any node names the owner and its address.
    for h in &hs {
        let reply = Raw::connect(h.addr).cmd(&["TENANT.LOCATE", "acme"]);
        assert_eq!(reply, Frame::Array(vec![common::bulk("n2"), common::bulk(&hs[1].addr.to_string())]));
        let e = Raw::connect(h.addr).cmd(&["TENANT.LOCATE", "nobody"]);
        assert!(matches!(&e, Frame::Error(m) if m.contains("not in the directory")), "{e}");
    }
    eventually("TENANT.NODES counts n2's tenant", Duration::from_secs(5), || {
        nodes(hs[0].addr).iter().any(|r| r.id == "n2" && r.tenants == 1 + b.is_ok() as i64)
    });

    // Deleting with a stale read is refused too; with a fresh one it goes.
    assert!(matches!(block_on(d1.delete_tenant("acme", &stale)), Err(DirError::Changed { .. })));
    let (fresh, _) = d1.locate("acme").unwrap();
    block_on(d1.delete_tenant("acme", &fresh)).expect("delete");
    eventually("acme gone everywhere", Duration::from_secs(5), || [&d1, &d2, &d3].iter().all(|d| d.locate("acme").is_none()));
}

#[test]
fn nodes_survive_an_etcd_restart() {
    let mut etcd = Etcd::start("restart");
    let hs = [node(&etcd, "n1"), node(&etcd, "n2"), node(&etcd, "n3")];
    let all = [("n1", hs[0].addr), ("n2", hs[1].addr), ("n3", hs[2].addr)];
    for h in &hs {
        eventually("all three alive", Duration::from_secs(10), || sees_alive(h.addr, &all));
    }
    assert_eq!(admin(hs[0].addr, &["TENANT.CREATE", "acme", "PASSWORD", "pw", "NODE", "n1"]), common::ok());
    for h in &hs {
        eventually("the record reaches every node", Duration::from_secs(5), || owner_of(h.addr, "acme").is_some());
    }

    etcd.kill();
    // Each node notices, keeps answering from what it knew, and refuses
    // changes, saying why.
    for h in &hs {
        let d = directory(h);
        eventually("etcd seen unreachable", Duration::from_secs(10), || d.reachable().is_err());
        assert!(sees_alive(h.addr, &all), "the last view is kept while etcd is down");
        let e = block_on(d.create_tenant("other", "n1")).unwrap_err();
        assert!(matches!(e, DirError::Unreachable(_)), "{e}");
        assert!(e.to_string().contains("etcd"), "{e}");
        assert_eq!(
            Raw::connect(h.addr).cmd(&["TENANT.LOCATE", "acme"]),
            Frame::Array(vec![common::bulk("n1"), common::bulk(&hs[0].addr.to_string())])
        );
        // Clients are still routed from what the node knew...
        let mut c = login_at(h.addr, "acme");
        assert_eq!(c.cmd(&["INCR", "n"]), Frame::Integer(1), "served");
        assert_eq!(c.cmd(&["DEL", "n"]), Frame::Integer(1));
        // ...and creates and moves are refused, saying why.
        let e = admin(h.addr, &["TENANT.CREATE", "other", "PASSWORD", "pw"]);
        assert!(matches!(&e, Frame::Error(m) if m.contains("etcd")), "{e}");
    }
    let e = admin(hs[0].addr, &["TENANT.MIGRATE", "acme", "n2"]);
    assert!(matches!(&e, Frame::Error(m) if m.contains("etcd") && m.contains("directory")), "{e}");
    assert_eq!(login_at(hs[1].addr, "acme").cmd(&["PING"]), Frame::Simple("PONG".into()), "acme stays on n1");

    etcd.launch();
    for h in &hs {
        let d = directory(h);
        let took = eventually("back in the directory", Duration::from_secs(20), || d.reachable().is_ok() && sees_alive(h.addr, &all));
        eprintln!("{} whole again {took:?} after etcd's restart", d.node_id());
    }
    block_on(directory(&hs[1]).create_tenant("other", "n2")).expect("changes work again");
    assert!(matches!(block_on(directory(&hs[2]).create_tenant("acme", "n3")), Err(DirError::Exists { .. })));
}

#[test]
fn a_node_id_is_answered_by_one_process() {
    let etcd = Etcd::start("dup");
    let first = node(&etcd, "n1");
    eventually("first registered", Duration::from_secs(10), || sees_alive(first.addr, &[("n1", first.addr)]));
    // A second process with the same id waits while the first's lease lives.
    let second = node(&etcd, "n1");
    assert!(directory(&second).reachable().is_err(), "the second is not registered");
    std::thread::sleep(Duration::from_secs(1));
    assert!(sees_alive(first.addr, &[("n1", first.addr)]), "the entry is still the first's");
    // Once the first leaves, the second takes the id over.
    drop(first);
    eventually("the second registered", Duration::from_secs(10), || sees_alive(second.addr, &[("n1", second.addr)]));
}

#[test]
fn a_node_starts_without_etcd_and_joins_when_it_answers() {
    let mut etcd = Etcd::unstarted("late");
    let n1 = node(&etcd, "n1");
    // It serves meanwhile, knowing no node, and refuses changes saying why.
    assert_eq!(Raw::connect(n1.addr).cmd(&["PING"]), Frame::Simple("PONG".into()));
    assert_eq!(nodes(n1.addr), vec![]);
    let e = block_on(directory(&n1).create_tenant("acme", "n1")).unwrap_err();
    assert!(matches!(&e, DirError::Unreachable(m) if m.contains("etcd")), "{e}");
    etcd.launch();
    eventually("registered once etcd answers", Duration::from_secs(15), || sees_alive(n1.addr, &[("n1", n1.addr)]));
    block_on(directory(&n1).create_tenant("acme", "n1")).expect("changes work");
}

#[test]
fn a_node_listening_on_every_address_must_advertise_one() {
    let mut c = common::config();
    c.server.bind = "0.0.0.0".into();
    c.cluster.node_id = "n1".into();
    c.cluster.etcd = vec!["http://127.0.0.1:1".into()];
    let e = ferrite::server::start_background(c).err().expect("refused");
    assert!(e.to_string().contains("advertise"), "{e}");
}

/// A node whose advertised address is `localhost:<port>`: others relay its
/// tenants' clients instead of handing their sockets over (what happens
/// between machines).
fn relayed_node(etcd: &Etcd, id: &str) -> ServerHandle {
    let mut c = common::config();
    let port = free_port();
    (c.server.port, c.cluster.node_id, c.cluster.etcd) = (port, id.into(), vec![etcd.endpoint()]);
    c.cluster.advertise = format!("localhost:{port}");
    common::start_with(c)
}

fn admin(addr: SocketAddr, args: &[&str]) -> Frame {
    Raw::connect(addr).cmd(args)
}

fn owner_of(addr: SocketAddr, id: &str) -> Option<String> {
    match admin(addr, &["TENANT.LOCATE", id]) {
        Frame::Array(v) => match &v[0] {
            Frame::Bulk(b) => Some(String::from_utf8(b.clone()).unwrap()),
            _ => None,
        },
        _ => None,
    }
}

/// Logs in as `id` (password `pw`) at `addr`: the node there may serve it
/// or pass it on.
fn login_at(addr: SocketAddr, id: &str) -> Raw {
    let mut c = Raw::connect(addr);
    assert_eq!(c.cmd(&["AUTH", id, "pw"]), common::ok(), "AUTH {id} at {addr}");
    c
}

fn all_alive(hs: &[&ServerHandle], ids: &[&str]) {
    let all: Vec<_> = ids.iter().zip(hs).map(|(id, h)| (*id, h.addr)).collect();
    for h in hs {
        eventually("every node sees the others", Duration::from_secs(10), || {
            let rows = nodes(h.addr);
            all.iter().all(|(id, _)| rows.iter().any(|r| r.id == *id && r.alive))
        });
    }
}

#[test]
fn tenants_are_placed_and_reached_from_every_node() {
    let etcd = Etcd::start("routing");
    let hs = [node(&etcd, "n1"), relayed_node(&etcd, "n2"), node(&etcd, "n3")];
    all_alive(&[&hs[0], &hs[1], &hs[2]], &["n1", "n2", "n3"]);
    // Placed where told, from any node; else on the node with most room.
    assert_eq!(admin(hs[0].addr, &["TENANT.CREATE", "acme", "PASSWORD", "pw", "NODE", "n2"]), common::ok());
    assert_eq!(admin(hs[2].addr, &["TENANT.CREATE", "globex", "PASSWORD", "pw", "NODE", "n1"]), common::ok());
    assert_eq!(admin(hs[1].addr, &["TENANT.CREATE", "initech", "PASSWORD", "pw"]), common::ok());
    let roomiest = nodes(hs[0].addr).into_iter().max_by_key(|r| r.memory_free).unwrap().id;
    let e = admin(hs[0].addr, &["TENANT.CREATE", "acme", "PASSWORD", "x"]);
    assert!(matches!(&e, Frame::Error(m) if m.contains("already exists") && m.contains("n2")), "{e}");
    let e = admin(hs[0].addr, &["TENANT.CREATE", "x", "NODE", "n9"]);
    assert!(matches!(&e, Frame::Error(m) if m.contains("n9")), "{e}");
    for h in &hs {
        eventually("records reach every node", Duration::from_secs(5), || {
            owner_of(h.addr, "acme").as_deref() == Some("n2")
                && owner_of(h.addr, "globex").as_deref() == Some("n1")
                && owner_of(h.addr, "initech").is_some()
        });
    }
    let initech = owner_of(hs[0].addr, "initech").unwrap();
    assert!(nodes(hs[0].addr).iter().any(|r| r.id == initech), "placed on a known node");
    eprintln!("initech placed on {initech}; the roomiest node was {roomiest}");
    // The tenant exists on its owner only.
    assert!(hs[1].state.tenants.get_tenant("acme").is_ok() && hs[0].state.tenants.get_tenant("acme").is_err());

    // Every tenant from every node: writes through one node read through another.
    for (i, h) in hs.iter().enumerate() {
        for id in ["acme", "globex", "initech"] {
            let mut c = login_at(h.addr, id);
            assert_eq!(c.cmd(&["SET", &format!("k{i}"), &format!("{id}-{i}")]), common::ok());
            assert_eq!(c.cmd(&["INCR", "hits"]), Frame::Integer(i as i64 + 1));
        }
    }
    for h in &hs {
        let mut c = login_at(h.addr, "acme");
        assert_eq!(c.cmd(&["GET", "k2"]), common::bulk("acme-2"));
        assert_eq!(c.cmd(&["DBSIZE"]), Frame::Integer(4));
        // RESP3 and a name given with HELLO's AUTH go along.
        let mut r3 = Raw::connect(h.addr);
        let hello = r3.cmd(&["HELLO", "3", "AUTH", "globex", "pw", "SETNAME", "app"]);
        assert!(matches!(hello, Frame::Map(_)), "{hello}");
        assert_eq!(r3.cmd(&["CLIENT", "GETNAME"]), common::bulk("app"));
        assert_eq!(r3.cmd(&["HGETALL", "none"]), Frame::Map(vec![]));
    }
    // A wrong password through another node: the owner's refusal, and the
    // connection goes on where it is.
    let mut c = Raw::connect(hs[0].addr);
    let e = c.cmd(&["AUTH", "acme", "nope"]);
    assert!(matches!(&e, Frame::Error(m) if m.starts_with("WRONGPASS")), "{e}");
    assert_eq!(c.cmd(&["AUTH", "acme", "pw"]), common::ok());
    assert_eq!(c.cmd(&["GET", "k0"]), common::bulk("acme-0"));

    // TENANT.LIST and TENANT.INFO on any node: every tenant, with its owner.
    for h in &hs {
        let list = admin(h.addr, &["TENANT.LIST"]);
        let want = [("acme", "n2"), ("globex", "n1"), ("initech", initech.as_str())];
        for (id, owner) in want {
            assert_eq!(common::field(&list, id), common::bulk(owner), "{list}");
        }
        let info = admin(h.addr, &["TENANT.INFO", "acme"]);
        assert_eq!(common::field(&info, "owner"), common::bulk("n2"), "{info}");
        assert_eq!(common::field(&info, "keys"), Frame::Integer(4), "{info}");
    }
    let filtered = admin(hs[2].addr, &["TENANT.LIST", "FILTER", "name", "glob*"]);
    assert_eq!(filtered, Frame::Array(vec![common::bulk("globex"), common::bulk("n1")]));

    // Inside MULTI a command that must ask another node is refused in its place.
    let mut m = Raw::connect(hs[0].addr);
    assert_eq!(m.cmd(&["MULTI"]), common::ok());
    assert_eq!(m.cmd(&["TENANT.INFO", "acme"]), Frame::Simple("QUEUED".into()));
    let exec = m.cmd(&["EXEC"]);
    assert!(matches!(&exec, Frame::Array(v) if v.len() == 1 && matches!(&v[0], Frame::Error(e) if e.contains("outside MULTI"))), "{exec}");
    // Operator commands about another node's tenant are that node's.
    assert_eq!(admin(hs[2].addr, &["TENANT.SUSPEND", "globex"]), common::ok());
    assert_eq!(common::field(&admin(hs[1].addr, &["TENANT.INFO", "globex"]), "state"), common::bulk("suspended"));
    assert_eq!(admin(hs[1].addr, &["TENANT.ACTIVATE", "globex"]), common::ok());

    // A record that outlived its tenant (a delete whose record change was
    // lost) goes with the next TENANT.DELETE.
    hs[0].state.tenants.delete_tenant("globex").unwrap();
    assert_eq!(admin(hs[0].addr, &["TENANT.DELETE", "globex"]), common::ok());
    eventually("globex's record gone", Duration::from_secs(5), || owner_of(hs[2].addr, "globex").is_none());

    // Deleted from a node that does not own it: gone everywhere.
    assert_eq!(admin(hs[2].addr, &["TENANT.DELETE", "acme"]), common::ok());
    for h in &hs {
        eventually("acme gone everywhere", Duration::from_secs(5), || owner_of(h.addr, "acme").is_none());
        let e = Raw::connect(h.addr).cmd(&["AUTH", "acme", "pw"]);
        assert!(matches!(&e, Frame::Error(m) if m.starts_with("WRONGPASS")), "{e}");
    }
    assert!(hs[1].state.tenants.get_tenant("acme").is_err());
}

#[test]
fn a_client_passes_through_at_most_two_nodes() {
    let etcd = Etcd::start("hops");
    let hs = [node(&etcd, "n1"), node(&etcd, "n2"), relayed_node(&etcd, "n3")];
    all_alive(&[&hs[0], &hs[1], &hs[2]], &["n1", "n2", "n3"]);
    assert_eq!(admin(hs[0].addr, &["TENANT.CREATE", "acme", "PASSWORD", "pw", "NODE", "n3"]), common::ok());
    eventually("the record reaches n1", Duration::from_secs(5), || owner_of(hs[0].addr, "acme").is_some());
    // What a node with a stale view does: it routes to the node it thinks
    // owns the tenant (here n1, told the client already made one hop),
    // which routes on: the second hop is allowed...
    let mut c = Raw::connect(hs[0].addr);
    assert_eq!(c.cmd(&["TENANT.HOPS", "1"]), common::ok());
    assert_eq!(c.cmd(&["AUTH", "acme", "pw"]), common::ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]), common::ok());
    // ...a third is not.
    let mut c = Raw::connect(hs[0].addr);
    assert_eq!(c.cmd(&["TENANT.HOPS", "2"]), common::ok());
    let e = c.cmd(&["AUTH", "acme", "pw"]);
    assert!(matches!(&e, Frame::Error(m) if m.starts_with("TRYAGAIN")), "{e}");
    // A tenant may not say it is a node.
    let mut t = login_at(hs[0].addr, "acme");
    assert!(matches!(t.cmd(&["TENANT.HOPS", "0"]), Frame::Error(_)));
    assert_eq!(t.cmd(&["GET", "k"]), common::bulk("v"));
}

/// A Ferrite process of its own (so it can be killed), in the cluster.
fn node_process(etcd: &Etcd, id: &str, port: u16, dir: &std::path::Path) -> common::Process {
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("ferrite.toml");
    std::fs::write(&conf, format!("[cluster]\nnode_id = \"{id}\"\netcd = [\"{}\"]\n", etcd.endpoint())).unwrap();
    common::Process::ferrite(port, dir, &["--appendonly", "yes", "--appendfsync", "always", "--config", conf.to_str().unwrap()])
}

#[test]
fn a_dead_nodes_tenants_answer_an_error_naming_it_until_it_returns() {
    let etcd = Etcd::start("death");
    let (n1, n2) = (node(&etcd, "n1"), node(&etcd, "n2"));
    let (port, dir) = (free_port(), data_dir("cluster-death-n3"));
    let mut n3 = node_process(&etcd, "n3", port, &dir);
    let all = [("n1", n1.addr), ("n2", n2.addr), ("n3", n3.addr)];
    eventually("all three alive", Duration::from_secs(10), || sees_alive(n1.addr, &all) && sees_alive(n2.addr, &all));
    assert_eq!(admin(n1.addr, &["TENANT.CREATE", "acme", "PASSWORD", "pw", "NODE", "n3"]), common::ok());
    eventually("the record reaches n2", Duration::from_secs(5), || owner_of(n2.addr, "acme").is_some());
    let mut c = login_at(n2.addr, "acme");
    assert_eq!(c.cmd(&["SET", "k", "v"]), common::ok());

    n3.kill();
    assert!(c.is_closed(), "a client served through n3 loses its connection");
    for h in [&n1, &n2] {
        eventually(
            "acme's error names n3",
            Duration::from_secs(10),
            || matches!(Raw::connect(h.addr).cmd(&["AUTH", "acme", "pw"]), Frame::Error(m) if m.starts_with("CLUSTERDOWN") && m.contains("'n3'")),
        );
        let e = admin(h.addr, &["TENANT.INFO", "acme"]);
        assert!(matches!(&e, Frame::Error(m) if m.contains("'n3'")), "{e}");
    }

    let _n3 = node_process(&etcd, "n3", port, &dir);
    for h in [&n1, &n2] {
        let took = eventually("acme served again", Duration::from_secs(20), || {
            let mut c = Raw::connect(h.addr);
            c.cmd(&["AUTH", "acme", "pw"]) == common::ok() && c.cmd(&["GET", "k"]) == common::bulk("v")
        });
        eprintln!("acme served through {} again {took:?} after n3 restarted", h.addr);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tenants_move_by_node_id_under_load_without_a_failed_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let etcd = Etcd::start("moves");
    let hs = [node(&etcd, "n1"), relayed_node(&etcd, "n2"), node(&etcd, "n3")];
    all_alive(&[&hs[0], &hs[1], &hs[2]], &["n1", "n2", "n3"]);
    let create = ["TENANT.CREATE", "acme", "PASSWORD", "pw", "NODE", "n1", "OPS", "1000000", "KEYS", "1000000", "MEMORY", "256mb"];
    assert_eq!(admin(hs[0].addr, &create), common::ok());
    for h in &hs {
        eventually("the record reaches every node", Duration::from_secs(5), || owner_of(h.addr, "acme").is_some());
    }
    let mut seed = login_at(hs[0].addr, "acme");
    for i in 0..2000 {
        seed.send(&common::encode([b"SET".as_slice(), format!("seed:{i}").as_bytes(), b"x"].into_iter()));
    }
    for _ in 0..2000 {
        assert_eq!(seed.read(), common::ok());
    }
    // A writer through each node, counting what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let writing = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = hs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let (stop, writing, addr) = (stop.clone(), writing.clone(), h.addr);
            std::thread::spawn(move || {
                let mut c = login_at(addr, "acme");
                let mut acked = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    match c.cmd(&["INCR", &format!("w{i}")]) {
                        Frame::Integer(n) if n == acked + 1 => acked = n,
                        other => panic!("writer {i} got {other} after {acked}"),
                    }
                    if acked == 1 {
                        writing.fetch_add(1, Ordering::Relaxed);
                    }
                }
                acked
            })
        })
        .collect();
    eventually("every writer wrote once", Duration::from_secs(10), || writing.load(Ordering::Relaxed) == 3);
    std::thread::sleep(Duration::from_millis(200));
    // Moved by node id, twice, each time asked of a different node.
    let r = admin(hs[0].addr, &["TENANT.MIGRATE", "acme", "n2"]);
    assert_eq!(common::field(&r, "keys"), Frame::Integer(2000 + 3), "{r}");
    std::thread::sleep(Duration::from_millis(300));
    let r = admin(hs[1].addr, &["TENANT.MIGRATE", "acme", "n3"]);
    assert!(matches!(common::field(&r, "keys"), Frame::Integer(_)), "{r}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<i64> = writers.into_iter().map(|w| w.join().expect("no writer failed")).collect();
    for h in &hs {
        eventually("every node locates acme on n3", Duration::from_secs(5), || owner_of(h.addr, "acme").as_deref() == Some("n3"));
    }
    let mut c = login_at(hs[0].addr, "acme");
    for (i, n) in acked.iter().enumerate() {
        assert!(*n > 0, "writer {i} wrote");
        assert_eq!(c.cmd(&["GET", &format!("w{i}")]), common::bulk(&n.to_string()), "every acknowledged INCR of writer {i}");
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Frame::Integer(2003));
    let info = admin(hs[1].addr, &["TENANT.INFO", "acme"]);
    assert_eq!(common::field(&info, "owner"), common::bulk("n3"), "{info}");
    // The password is the owner's: changed there (asked of a node the
    // tenant left), the old one no longer opens it through any node.
    assert_eq!(admin(hs[0].addr, &["TENANT.UPDATE", "acme", "PASSWORD", "pw2"]), common::ok());
    for h in &hs {
        let e = Raw::connect(h.addr).cmd(&["AUTH", "acme", "pw"]);
        assert!(matches!(&e, Frame::Error(m) if m.starts_with("WRONGPASS")), "{e}");
        assert_eq!(Raw::connect(h.addr).cmd(&["AUTH", "acme", "pw2"]), common::ok());
    }
    // Moves by node id are refused to a dead, unknown or the same node.
    let e = admin(hs[2].addr, &["TENANT.MIGRATE", "acme", "n3"]);
    assert!(matches!(&e, Frame::Error(m) if m.contains("this node")), "{e}");
    let e = admin(hs[2].addr, &["TENANT.MIGRATE", "acme", "n9"]);
    assert!(matches!(&e, Frame::Error(m) if m.contains("n9")), "{e}");
}

#[test]
fn rebalance_plans_and_makes_moves_that_even_out_memory() {
    let etcd = Etcd::start("rebalance");
    let hs = [node(&etcd, "n1"), node(&etcd, "n2")];
    all_alive(&[&hs[0], &hs[1]], &["n1", "n2"]);
    let value = "x".repeat(100_000);
    for id in ["a", "b", "c", "d"] {
        assert_eq!(admin(hs[0].addr, &["TENANT.CREATE", id, "PASSWORD", "pw", "NODE", "n1", "MEMORY", "64mb"]), common::ok());
        let mut c = login_at(hs[0].addr, id);
        for i in 0..10 {
            assert_eq!(c.cmd(&["SET", &format!("k{i}"), &value]), common::ok());
        }
    }
    let plan = admin(hs[1].addr, &["TENANT.REBALANCE", "DRY-RUN"]);
    let Frame::Array(moves) = &plan else { panic!("{plan}") };
    assert_eq!(moves.len(), 2, "four 1 MB tenants on n1, none on n2: two move: {plan}");
    for m in moves {
        assert_eq!((common::field(m, "from"), common::field(m, "to")), (common::bulk("n1"), common::bulk("n2")), "{plan}");
    }
    assert!(hs[0].state.tenants.list().len() == 4, "a dry run moves nothing");
    let done = admin(hs[1].addr, &["TENANT.REBALANCE"]);
    let Frame::Array(moves) = &done else { panic!("{done}") };
    assert_eq!(moves.len(), 2, "{done}");
    for m in moves {
        assert_eq!(common::field(m, "result"), common::bulk("ok"), "{done}");
        let Frame::Bulk(id) = common::field(m, "tenant") else { panic!("{done}") };
        let id = String::from_utf8(id).unwrap();
        eventually("moved tenants are n2's", Duration::from_secs(5), || owner_of(hs[0].addr, &id).as_deref() == Some("n2"));
        let mut c = login_at(hs[0].addr, &id);
        assert_eq!(c.cmd(&["STRLEN", "k9"]), Frame::Integer(100_000));
    }
    let again = admin(hs[0].addr, &["TENANT.REBALANCE", "DRY-RUN"]);
    assert_eq!(again, Frame::Array(vec![]), "even now");
}

#[test]
fn a_watch_cut_off_by_a_compaction_reads_the_directory_again() {
    let etcd = Etcd::start("compact");
    let n1 = node(&etcd, "n1");
    // n2 is a process of its own, so it can be stopped (SIGSTOP) while
    // etcd moves on and compacts past what its watch has delivered.
    let (port, dir) = (free_port(), data_dir("cluster-compact-n2"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ferrite.toml");
    std::fs::write(&conf, format!("[cluster]\nnode_id = \"n2\"\netcd = [\"{}\"]\n", etcd.endpoint())).unwrap();
    let log = dir.join("n2.log");
    /// Killed however the test ends (a stopped process would hold what it
    /// inherited, such as a build lock, for ever).
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let n2 = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["--port", &port.to_string(), "--dir", dir.to_str().unwrap(), "--appendonly", "no", "--config", conf.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let n2 = Killed(n2);
    let n2_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually("n1 sees n2", Duration::from_secs(15), || nodes(n1.addr).iter().any(|r| r.id == "n2" && r.alive));
    let signal = |sig: &str| assert!(Command::new("kill").args([sig, &n2.0.id().to_string()]).status().unwrap().success());

    // More than the watch's socket buffers, HTTP/2 window and etcd's queue
    // of 128 responses hold, and quick enough (under a second here) that
    // n2's lease (3 s) outlives the stop.
    const PUTS: usize = 2000;
    signal("-STOP");
    let started = Instant::now();
    let d1 = directory(&n1);
    block_on(async {
        let client = etcd_client::Client::connect([etcd.endpoint()], None).await.unwrap();
        // Far more events than a stopped watcher's buffers hold, so etcd
        // stops sending them; then a record n2 has not seen, and a
        // compaction past all of it.
        let mut puts = tokio::task::JoinSet::new();
        for i in 0..PUTS {
            let mut c = client.clone();
            puts.spawn(async move { c.put(format!("/ferrite/filler/{i}"), vec![b'x'; 32 * 1024], None).await.map(|_| ()) });
        }
        while let Some(r) = puts.join_next().await {
            r.unwrap().unwrap();
        }
        d1.create_tenant("late", "n1").await.unwrap();
        let mut c = client.clone();
        let revision = c.get("/ferrite/", None).await.unwrap().header().unwrap().revision();
        c.compact(revision, None).await.unwrap();
    });
    let stopped = started.elapsed();
    signal("-CONT");
    eprintln!("n2 stopped for {stopped:?}");
    eventually("n2 reads the record made while its watch was cut off", Duration::from_secs(15), || {
        owner_of(n2_addr, "late").as_deref() == Some("n1")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    drop(n2);
    let _ = std::fs::remove_dir_all(&dir);
    // A stop that outlived the lease's margin (a very slow machine) ends
    // n2's session instead, which reads everything again too.
    if stopped < Duration::from_millis(2500) {
        assert!(text.contains("directory watch cancelled; reading it again"), "n2's log:\n{text}");
    } else {
        eprintln!("n2 was stopped past its lease's margin: its session ended rather than its watch");
    }
}

#[test]
fn a_nodes_own_tenants_and_their_records_are_made_to_agree() {
    use ferrite::tenancy::{TenantLimits, TenantTier};
    let etcd = Etcd::start("reconcile");
    let (n1, n2) = (node(&etcd, "n1"), node(&etcd, "n2"));
    all_alive(&[&n1, &n2], &["n1", "n2"]);
    assert_eq!(admin(n1.addr, &["TENANT.CREATE", "acme", "PASSWORD", "pw", "NODE", "n1"]), common::ok());
    eventually("acme's record reaches n2", Duration::from_secs(5), || owner_of(n2.addr, "acme").is_some());
    let mut c = login_at(n1.addr, "acme");
    assert_eq!(c.cmd(&["SET", "k", "n1's"]), common::ok());
    // Tenants n2 has that the directory does not say it owns: one with no
    // record (made before it joined) and a stale copy of acme (as a node
    // that died between a move's cut-over and its note of it keeps).
    let make = |id: &str| {
        let t = n2.state.tenants.create_with(id, None, TenantTier::Free, TenantLimits::default(), Some(b"pw"), "noeviction").unwrap();
        let mut c = Raw::connect(n2.addr);
        assert_eq!(c.cmd(&["TENANT.USE", id]), common::ok());
        assert_eq!(c.cmd(&["SET", "k", "n2's"]), common::ok());
        t
    };
    let (solo, stale) = (make("solo"), make("acme"));
    // Any change to the directory sets n2 reconciling.
    assert_eq!(admin(n1.addr, &["TENANT.CREATE", "other", "NODE", "n1"]), common::ok());
    eventually("solo recorded as n2's", Duration::from_secs(5), || owner_of(n1.addr, "solo").as_deref() == Some("n2"));
    eventually("the stale copy gives way", Duration::from_secs(5), || stale.is_moved());
    assert_eq!(stale.get_usage().keys, 0, "its data is gone");
    assert_eq!(solo.get_usage().keys, 1);
    // Through n2, acme is n1's (and its password n1's to check).
    let mut c = login_at(n2.addr, "acme");
    assert_eq!(c.cmd(&["GET", "k"]), common::bulk("n1's"));
    assert_eq!(login_at(n1.addr, "solo").cmd(&["GET", "k"]), common::bulk("n2's"));
}
