//! Criterion benches for the hot paths: parsing a pipelined batch, and
//! keyspace reads and writes. Run with `cargo bench`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrite::protocol::{Argv, Limits, Out, parse_request};
use ferrite::store::{Keyspace, Value};
use std::hint::black_box;

fn batch(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let key = format!("key:{i:012}");
        v.extend(format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$3\r\nxxx\r\n", key.len()).into_bytes());
    }
    v
}

fn parser(c: &mut Criterion) {
    let buf = batch(16);
    let limits = Limits { max_bulk_len: 512 << 20, unauthenticated: false };
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(16));
    g.bench_function("pipelined SET x16", |b| {
        let mut argv = Argv::default();
        b.iter(|| {
            let mut pos = 0;
            while let Ok(Some(n)) = parse_request(&buf[pos..], &limits, &mut argv) {
                black_box(argv.iter(&buf[pos..]).count());
                pos += n;
            }
        })
    });
    g.finish();
}

fn keyspace(c: &mut Criterion) {
    let ks = Keyspace::new();
    let keys: Vec<Vec<u8>> = (0..100_000).map(|i| format!("key:{i:012}").into_bytes()).collect();
    for k in &keys {
        ks.write(k, 0, |s| s.set(Value::string(b"xxx")));
    }
    let mut g = c.benchmark_group("keyspace");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("get hit", |b| {
        let mut out = Out::new(false);
        b.iter(|| {
            i = (i + 7919) % keys.len();
            ks.read(&keys[i], 0, true, |e| {
                if let Value::Str(s, _) = &e.value {
                    out.bulk(s)
                }
            });
            out.buf.clear();
        })
    });
    g.bench_function("set overwrite", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            ks.write(&keys[i], 0, |s| s.set(Value::string(b"yyy")));
        })
    });
    g.finish();
}

criterion_group!(benches, parser, keyspace);
criterion_main!(benches);
