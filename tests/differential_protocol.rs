//! Mutated RESP streams sent to both redis-server 7.0 and Ferrite: the bytes
//! each replies with and whether it closes the connection must match.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Sends `input`, then a PING; collects replies until the server closes or
/// stays quiet. Returns (bytes, closed).
fn exchange(addr: SocketAddr, input: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
    let _ = s.write_all(input);
    let _ = s.write_all(b"\r\n*1\r\n$4\r\nPING\r\n");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
    (out, false)
}

const CORPUS: &[&[u8]] = &[
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n",
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"*1\r\n$4\r\nPING\r\n",
    b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n",
    b"ECHO \"quoted arg\"\r\n",
    b"SET k 'single'\r\n",
    b"*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\nx\r\n",
];

const MUTATIONS: usize = 300;

#[test]
fn mutated_streams_get_the_same_bytes_and_closing() {
    let redis = common::RedisServer::start();
    let raddr = redis.addr;
    let ferrite = common::start();
    let mut rng = fastrand::Rng::with_seed(0xF3_2217);
    let mut failures = Vec::new();
    for i in 0..MUTATIONS {
        let mut input: Vec<u8> = (0..rng.usize(1..4)).flat_map(|_| CORPUS[rng.usize(..CORPUS.len())].to_vec()).collect();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..input.len());
            let byte = *rng.choice(b"*$\r\n-0123456789 \"'abcxyzSETGET\\\x00\xff".iter()).unwrap();
            match rng.u8(..3) {
                0 => input[at] = byte,
                1 => input.insert(at, byte),
                _ => {
                    input.remove(at);
                }
            }
            if input.is_empty() {
                input.push(b'\n');
            }
        }
        let (r, f) = (exchange(raddr, &input), exchange(ferrite.addr, &input));
        if r != f {
            failures.push(format!(
                "#{i} input {:?}\n  redis   (closed={}) {:?}\n  ferrite (closed={}) {:?}",
                String::from_utf8_lossy(&input),
                r.1,
                String::from_utf8_lossy(&r.0),
                f.1,
                String::from_utf8_lossy(&f.0)
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {MUTATIONS} differ:\n{}", failures.len(), failures.join("\n"));
}
