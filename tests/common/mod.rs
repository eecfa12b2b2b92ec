//! Shared test helpers: an in-process server on port 0, a real client, and a
//! raw RESP connection for byte-level tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrite::config::Config;
use ferrite::protocol::Frame;
use ferrite::server::{ServerHandle, start_background};

pub fn config() -> Config {
    let mut c = Config::default();
    c.server.port = 0;
    // Tests that persist choose their own directory.
    c.persistence.appendonly = false;
    c
}

pub fn start() -> ServerHandle {
    start_with(config())
}

pub fn start_with(c: Config) -> ServerHandle {
    start_background(c).expect("server starts")
}

/// Creates tenant `id` (password `pw`, and the given TENANT.CREATE
/// options) as the admin, and returns a connection logged in as it.
pub fn tenant(h: &ServerHandle, id: &str, options: &[&str]) -> Raw {
    let mut admin = Raw::connect(h.addr);
    let mut create = vec!["TENANT.CREATE", id, "PASSWORD", "pw"];
    create.extend_from_slice(options);
    assert_eq!(admin.cmd(&create), ok());
    login(h, id)
}

/// A connection logged in as tenant `id` (password `pw`).
pub fn login(h: &ServerHandle, id: &str) -> Raw {
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["AUTH", id, "pw"]), ok());
    c
}

pub fn client(h: &ServerHandle) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{}/", h.addr)).expect("client");
    c.get_connection().expect("connect")
}

/// A connection that speaks raw RESP.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: std::net::SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw { stream, buf: Vec::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn cmd(&mut self, args: &[&str]) -> Frame {
        self.send(&encode(args.iter().map(|a| a.as_bytes())));
        self.read()
    }

    /// Reads one reply (panics on timeout).
    pub fn read(&mut self) -> Frame {
        self.try_read().expect("a reply before the connection closed")
    }

    /// Reads one reply; None if the server closed the connection first.
    pub fn try_read(&mut self) -> Option<Frame> {
        loop {
            if let Some((f, n)) = Frame::decode(&self.buf).expect("well-formed reply") {
                self.buf.drain(..n);
                return Some(f);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// True if the server closed the connection (after any pending replies).
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Encodes a command as a RESP multibulk.
pub fn encode<'a>(args: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec())
}

pub fn err(s: &str) -> Frame {
    Frame::Error(s.to_string())
}

pub fn ok() -> Frame {
    Frame::Simple("OK".into())
}

/// The value after `name` in a flat field/value reply (TENANT.INFO, TENANT.STATS...).
pub fn field(f: &Frame, name: &str) -> Frame {
    let Frame::Array(v) = f else { panic!("array: {f}") };
    let i = v.iter().position(|x| x == &bulk(name)).unwrap_or_else(|| panic!("no {name} in {f}"));
    v[i + 1].clone()
}

/// The value of `name:` in INFO's text, trimmed.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_string())
}

/// A fresh data directory for a test, named after it and this process.
pub fn data_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferrite-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A free loopback port (free when asked; a server started on it next
/// finds it free in practice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process started by the test on a loopback port, killed on drop.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Starts `program` with `args` (which make it listen on `port`) and
    /// waits until it accepts connections.
    pub fn start(program: &str, port: u16, args: &[&str]) -> Process {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e} (the README's test script installs what the tests need)"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..200 {
            if TcpStream::connect(addr).is_ok() {
                return Process { child, addr };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{program} did not start");
    }

    /// The Ferrite binary itself, with its data in `dir`.
    pub fn ferrite(port: u16, dir: &std::path::Path, extra: &[&str]) -> Process {
        let port_s = port.to_string();
        let mut args = vec!["--port", &port_s, "--dir", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        Process::start(env!("CARGO_BIN_EXE_ferrite"), port, &args)
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` started by the test on a free loopback port, killed on drop.
pub struct RedisServer {
    _process: Process,
    pub addr: SocketAddr,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        let process =
            Process::start("redis-server", port, &["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        RedisServer { addr: process.addr, _process: process }
    }
}
