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
    block_on(directory(&hs[0]).create_tenant("acme", "n1")).unwrap();

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
    }

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
