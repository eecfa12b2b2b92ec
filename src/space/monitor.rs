//! MONITOR: the clients that watch a space's commands, and the lines they
//! get, in Redis's format (`+<sec>.<usec> [<db> <addr>] "arg" ...`).
//!
//! The global space's monitors are the admin's and see every command of
//! every space, tagged with its tenant; a tenant's see its own clients'
//! commands only. With no monitor, a command pays one relaxed load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use parking_lot::RwLock;

use super::pubsub::{Delivery, Kind, Message, Subscriber, deliver};

#[derive(Default)]
pub struct Monitors {
    count: AtomicUsize,
    list: RwLock<Vec<Subscriber>>,
}

/// Where a command came from, as a monitor line names it.
pub struct Source<'a> {
    pub db: usize,
    /// The client's address, or None for a script's command (`lua`).
    pub addr: Option<std::net::SocketAddr>,
    /// The tenant it ran in, for the admin's monitors.
    pub tenant: Option<&'a str>,
}

impl Monitors {
    #[inline(always)]
    pub fn any(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    /// Adds a monitor; false if it already is one.
    pub fn add(&self, sub: Subscriber) -> bool {
        let mut list = self.list.write();
        if list.iter().any(|m| m.id == sub.id) {
            return false;
        }
        list.push(sub);
        self.count.store(list.len(), Relaxed);
        true
    }

    pub fn remove(&self, id: u64) {
        if !self.any() {
            return;
        }
        let mut list = self.list.write();
        list.retain(|m| m.id != id);
        self.count.store(list.len(), Relaxed);
    }

    /// Sends the line for `argv` to every monitor (the caller checked
    /// [`Monitors::any`]). Monitors that cannot keep up are disconnected.
    pub fn feed(&self, from: &Source, argv: &[&[u8]], how: Delivery) {
        let line: Arc<[u8]> = line(from, argv).into();
        let empty: Arc<[u8]> = Arc::from(&b""[..]);
        for m in self.list.read().iter() {
            let msg = Message { kind: Kind::Monitor, pattern: None, channel: empty.clone(), payload: line.clone() };
            deliver(m, msg, how);
        }
    }
}

/// Arguments whose value never reaches a monitor (passwords).
pub fn redacted(argv: &[&[u8]], i: usize) -> bool {
    let is = |a: &[u8], w: &str| a.eq_ignore_ascii_case(w.as_bytes());
    if is(argv[0], "auth") {
        return i > 0;
    }
    // HELLO [protover [AUTH user pass] [SETNAME name]]
    if is(argv[0], "hello") {
        return (2..argv.len()).any(|j| is(argv[j], "auth") && (i == j + 1 || i == j + 2));
    }
    false
}

fn line(from: &Source, argv: &[&[u8]]) -> Vec<u8> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut out = format!("+{}.{:06} [{} ", now.as_secs(), now.subsec_micros(), from.db).into_bytes();
    match from.addr {
        Some(a) => out.extend_from_slice(a.to_string().as_bytes()),
        None => out.extend_from_slice(b"lua"),
    }
    if let Some(t) = from.tenant {
        out.extend_from_slice(b" tenant=");
        out.extend_from_slice(t.as_bytes());
    }
    out.extend_from_slice(b"]");
    for (i, a) in argv.iter().enumerate() {
        out.push(b' ');
        if redacted(argv, i) {
            out.extend_from_slice(b"\"(redacted)\"");
        } else {
            repr(&mut out, a);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A quoted, escaped argument, as Redis's `sdscatrepr` writes it.
pub fn repr(out: &mut Vec<u8>, a: &[u8]) {
    out.push(b'"');
    for &c in a {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(from: &Source, argv: &[&str]) -> String {
        let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        let l = String::from_utf8(line(from, &argv)).unwrap();
        l.split_once(' ').unwrap().1.to_string()
    }

    #[test]
    fn lines_quote_escape_redact_and_tag() {
        let addr = Some("127.0.0.1:5000".parse().unwrap());
        let plain = Source { db: 2, addr, tenant: None };
        assert_eq!(text(&plain, &["SET", "k\"\n", "a b\x01"]), "[2 127.0.0.1:5000] \"SET\" \"k\\\"\\n\" \"a b\\x01\"\r\n");
        assert_eq!(text(&plain, &["AUTH", "u", "p"]), "[2 127.0.0.1:5000] \"AUTH\" \"(redacted)\" \"(redacted)\"\r\n");
        assert_eq!(
            text(&plain, &["hello", "3", "AUTH", "u", "p", "SETNAME", "n"]),
            "[2 127.0.0.1:5000] \"hello\" \"3\" \"AUTH\" \"(redacted)\" \"(redacted)\" \"SETNAME\" \"n\"\r\n"
        );
        let script = Source { db: 0, addr: None, tenant: Some("acme") };
        assert_eq!(text(&script, &["get", "k"]), "[0 lua tenant=acme] \"get\" \"k\"\r\n");
    }
}
