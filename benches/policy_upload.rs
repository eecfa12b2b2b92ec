//! Upload-to-active time of a 100 KB policy module through a real
//! connection to the release server, and what another client sees while
//! uploads compile: PING round trips during back-to-back uploads against
//! the same client alone.
//!
//! `cargo bench --bench policy_upload`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/policies.rs"]
#[allow(dead_code)]
mod policies;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Raw, encode};
use ferrite::protocol::Frame;

const UPLOADS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut d: Vec<Duration>) -> String {
    d.sort();
    let slow = d.iter().filter(|x| **x > Duration::from_millis(2)).count();
    format!(
        "n={} over_2ms={slow} p50={:?} p99={:?} max={:?}",
        d.len(),
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        d.last().copied().unwrap_or_default()
    )
}

/// PING round trips until `stop` is set (or for `limit`).
fn pings(addr: std::net::SocketAddr, stop: &AtomicBool, limit: Duration) -> Vec<Duration> {
    let mut c = Raw::connect(addr);
    let start = Instant::now();
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        let t = Instant::now();
        assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
        out.push(t.elapsed());
    }
    out
}

fn main() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the release server");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut admin = loop {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            drop(s);
            break Raw::connect(addr);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(admin.cmd(&["TENANT.CREATE", "t"]), Frame::Simple("OK".into()));
    let module = policies::synthetic(100_000);

    let alone = pings(addr, &AtomicBool::new(false), Duration::from_secs(3));
    let stop = AtomicBool::new(false);
    let (uploads, during) = std::thread::scope(|s| {
        let pinger = s.spawn(|| pings(addr, &stop, Duration::from_secs(120)));
        let mut times = Vec::new();
        for _ in 0..UPLOADS {
            let t = Instant::now();
            admin.send(&encode([b"TENANT.UPDATE".as_slice(), b"t", b"POLICY", &module].into_iter()));
            assert_eq!(admin.read(), Frame::Simple("OK".into()));
            times.push(t.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        (times, pinger.join().unwrap())
    });
    println!("module: {} bytes", module.len());
    println!("upload-to-active:          {}", summary(uploads));
    println!("PING alone:                {}", summary(alone));
    println!("PING during the uploads:   {}", summary(during));
    let _ = server.kill();
    let _ = server.wait();
}
