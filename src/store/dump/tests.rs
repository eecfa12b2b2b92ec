//! The codec against payloads captured from redis-server 7.0.15 (and
//! hand-built older forms Redis 7.0 restores), round trips of every type,
//! and hostile payloads.

use std::sync::Arc;

use super::*;
use crate::store::stream::{StreamId, StreamValue};
use crate::store::value::{HashValue, ListValue, SetValue, ZSetValue};

macro_rules! vector {
    ($name:literal) => {
        ($name, include_str!(concat!("../../../tests/dump_vectors/", $name, ".hex")))
    };
}

/// Every captured payload, by name.
const VECTORS: &[(&str, &str)] = &[
    vector!("string_short"),
    vector!("string_empty"),
    vector!("string_int8"),
    vector!("string_int8_neg"),
    vector!("string_int16"),
    vector!("string_int32"),
    vector!("string_int64_text"),
    vector!("string_leading_zero"),
    vector!("string_float"),
    vector!("string_lzf"),
    vector!("string_lzf_aaaa"),
    vector!("string_21_noncompressible"),
    vector!("string_binary"),
    vector!("string_big_lzf"),
    vector!("list_small"),
    vector!("list_big"),
    vector!("list_big_compress_depth1"),
    vector!("list_plain_nodes"),
    vector!("hash_small"),
    vector!("hash_big_entries"),
    vector!("hash_big_value"),
    vector!("set_intset16"),
    vector!("set_intset32"),
    vector!("set_intset64"),
    vector!("set_strings_small"),
    vector!("set_big_ints"),
    vector!("set_big_strings"),
    vector!("zset_small"),
    vector!("zset_big"),
    vector!("zset_big_value"),
    vector!("stream_basic"),
    vector!("stream_deleted"),
    vector!("stream_cgroups"),
    vector!("stream_empty_group"),
    vector!("stream_big"),
    vector!("stream_all_deleted"),
    vector!("hll_sparse"),
    vector!("hll_dense"),
    vector!("old_list_ziplist_t10"),
    vector!("old_list_quicklist_v1_t14"),
    vector!("old_hash_ziplist_t13"),
    vector!("old_zset_ziplist_t12"),
    vector!("old_hash_zipmap_t9"),
    vector!("old_list_plain_t1"),
    vector!("old_zset_textdouble_t3"),
    vector!("old_stream_v1_t15"),
    vector!("old_hash_ziplist_dup_t13"),
];

/// Payloads whose bytes do not depend on hash-table order or on how the
/// value was built: what we write must be exactly what Redis wrote.
const BYTE_EXACT: &[&str] = &[
    "string_short",
    "string_empty",
    "string_int8",
    "string_int8_neg",
    "string_int16",
    "string_int32",
    "string_int64_text",
    "string_leading_zero",
    "string_float",
    "string_lzf",
    "string_lzf_aaaa",
    "string_21_noncompressible",
    "string_binary",
    "string_big_lzf",
    "list_small",
    "list_big",
    "list_big_compress_depth1",
    "hash_small",
    "set_intset16",
    "set_intset32",
    "set_intset64",
    "zset_small",
    "zset_big",
    "zset_big_value",
    "stream_basic",
    "stream_deleted",
    "stream_cgroups",
    "stream_empty_group",
    "stream_big",
    "stream_all_deleted",
    "hll_sparse",
    "hll_dense",
];

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn payload(name: &str) -> Vec<u8> {
    unhex(VECTORS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no vector {name}")).1)
}

fn restore(name: &str) -> Value {
    decode(&payload(name), Limits::unlimited()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn string_of(v: &Value) -> Vec<u8> {
    match v {
        Value::Str(s, _) => s.to_vec(),
        other => panic!("not a string: {other:?}"),
    }
}

fn list_of(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l.iter().map(|e| text(e)).collect(),
        other => panic!("not a list: {other:?}"),
    }
}

fn hash_of(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Hash(h) => h.iter().map(|(f, v)| (text(f), text(v))).collect(),
        other => panic!("not a hash: {other:?}"),
    }
}

fn sorted_hash_of(v: &Value) -> Vec<(String, String)> {
    let mut h = hash_of(v);
    h.sort();
    h
}

fn set_of(v: &Value) -> Vec<String> {
    match v {
        Value::Set(s) => {
            let mut m: Vec<String> = s.members().iter().map(|m| text(m)).collect();
            m.sort();
            m
        }
        other => panic!("not a set: {other:?}"),
    }
}

fn zset_of(v: &Value) -> Vec<(String, f64)> {
    match v {
        Value::ZSet(z) => z.iter().map(|(m, s)| (text(m), s)).collect(),
        other => panic!("not a zset: {other:?}"),
    }
}

fn stream_of(v: &Value) -> &StreamValue {
    match v {
        Value::Stream(s) => s,
        other => panic!("not a stream: {other:?}"),
    }
}

/// Every live entry as `id field=value ...`.
fn entries(s: &StreamValue) -> Vec<String> {
    let mut out = Vec::new();
    s.range(StreamId::MIN, StreamId::MAX, false, |e| {
        let fields: Vec<String> = e.fields.iter().map(|(f, v)| format!("{}={}", text(f), text(v))).collect();
        out.push(format!("{} {}", e.id, fields.join(" ")));
        true
    });
    out
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn crc64_is_redis_crc() {
    assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
    assert_eq!(crc64(b""), 0);
    let p = payload("string_short");
    assert_eq!(u64::from_le_bytes(p[p.len() - 8..].try_into().unwrap()), 0x0a20346576df7263);
}

#[test]
fn strings_decode() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("string_short", b"hello", "embstr"),
        ("string_empty", b"", "embstr"),
        ("string_int8", b"100", "int"),
        ("string_int8_neg", b"-1", "int"),
        ("string_int16", b"12345", "int"),
        ("string_int32", b"-1234567890", "int"),
        ("string_int64_text", b"1234567890123", "int"),
        ("string_leading_zero", b"007", "embstr"),
        ("string_float", b"3.14", "embstr"),
        ("string_21_noncompressible", b"0123456789abcdefghijklmnopqrst", "embstr"),
    ];
    for (name, want, enc) in cases {
        let v = restore(name);
        assert_eq!((string_of(&v).as_slice(), v.encoding()), (*want, *enc), "{name}");
    }
    assert_eq!(string_of(&restore("string_lzf")), b"abcdefghij".repeat(20));
    assert_eq!(string_of(&restore("string_lzf_aaaa")), vec![b'a'; 64]);
    assert_eq!(string_of(&restore("string_binary")), (0..=255u8).collect::<Vec<_>>());
    let lines: Vec<u8> = (0..540).flat_map(|i| format!("line {i:05}: lorem ipsum dolor sit amet\n").into_bytes()).take(20000).collect();
    let big = restore("string_big_lzf");
    assert_eq!((string_of(&big), big.encoding()), (lines, "raw"));
}

#[test]
fn hyperloglogs_decode_as_strings_pf_commands_read() {
    let mut sparse = string_of(&restore("hll_sparse"));
    assert!(crate::store::hll::is_sparse(&sparse));
    assert_eq!(crate::store::hll::count(&mut sparse).unwrap().0, 5);
    let mut dense = string_of(&restore("hll_dense"));
    assert_eq!(dense.len(), crate::store::hll::DENSE_LEN);
    let n = crate::store::hll::count(&mut dense).unwrap().0;
    assert!((4900..5100).contains(&n), "{n}");
}

#[test]
fn lists_decode() {
    let small = restore("list_small");
    assert_eq!(list_of(&small), strs(&["a", "bb", "1", "-100", "1000000", "hello world"]));
    let want: Vec<String> = (0..1000).map(|i| format!("item:{i}")).collect();
    assert_eq!(list_of(&restore("list_big")), want);
    assert_eq!(list_of(&restore("list_big_compress_depth1")), want);
    assert_eq!(list_of(&restore("list_plain_nodes")), strs(&["a", "b", "this-is-a-large-element", "c"]));
    let old = restore("old_list_ziplist_t10");
    let x70 = "x".repeat(70);
    assert_eq!(list_of(&old), strs(&["a", "5", "300", "-2", "100000", "1099511627776", &x70, "12", "13"]));
    assert_eq!(list_of(&restore("old_list_quicklist_v1_t14")), strs(&["a", "b", "3", "c"]));
    assert_eq!(list_of(&restore("old_list_plain_t1")), strs(&["a", "5", "ccc"]));
    assert_eq!(small.encoding(), "quicklist");
}

#[test]
fn hashes_decode() {
    let small = restore("hash_small");
    assert_eq!(hash_of(&small), pairs(&[("name", "ferrite"), ("age", "3"), ("neg", "-5000"), ("big", "123456789012")]));
    assert_eq!(small.encoding(), "listpack");
    let big = restore("hash_big_entries");
    let mut want: Vec<(String, String)> = (0..600).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
    want.sort();
    assert_eq!((sorted_hash_of(&big), big.encoding()), (want, "hashtable"));
    let bv = restore("hash_big_value");
    assert_eq!((sorted_hash_of(&bv), bv.encoding()), (pairs(&[("a", "1"), ("long", &"x".repeat(100))]), "hashtable"));
    assert_eq!(hash_of(&restore("old_hash_ziplist_t13")), pairs(&[("f1", "v1"), ("n", "7")]));
    let zm = restore("old_hash_zipmap_t9");
    assert_eq!((hash_of(&zm), zm.encoding()), (pairs(&[("foo", "bar"), ("hello", "world")]), "listpack"));
    assert_eq!(decode(&payload("old_hash_ziplist_dup_t13"), Limits::unlimited()).unwrap_err(), DumpError::BadData);
}

#[test]
fn sets_decode() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("set_intset16", &["-7", "1", "2", "3", "300"], "intset"),
        ("set_intset32", &["-70000", "1", "70000"], "intset"),
        ("set_intset64", &["-9223372036854775808", "1", "9223372036854775807"], "intset"),
        ("set_strings_small", &["apple", "banana", "cherry"], "hashtable"),
    ];
    for (name, want, enc) in cases {
        let v = restore(name);
        let mut want = strs(want);
        want.sort();
        assert_eq!((set_of(&v), v.encoding()), (want, *enc), "{name}");
    }
    let ints = restore("set_big_ints");
    let mut want: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!((set_of(&ints), ints.encoding()), (want, "hashtable"));
    let mut want: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(set_of(&restore("set_big_strings")), want);
}

#[test]
fn sorted_sets_decode() {
    let small = restore("zset_small");
    let want = [("f", f64::NEG_INFINITY), ("c", -3.0), ("d", 0.1), ("a", 1.0), ("b", 2.5), ("g", 100000.0), ("e", f64::INFINITY)];
    let want: Vec<(String, f64)> = want.iter().map(|(m, s)| (m.to_string(), *s)).collect();
    assert_eq!((zset_of(&small), small.encoding()), (want, "listpack"));
    let big = restore("zset_big");
    let want: Vec<(String, f64)> = (0..200).map(|i| (format!("m{i}"), i as f64 * 1.5)).collect();
    assert_eq!((zset_of(&big), big.encoding()), (want, "skiplist"));
    let bv = restore("zset_big_value");
    assert_eq!((zset_of(&bv), bv.encoding()), (vec![("a".to_string(), 1.0), ("y".repeat(70), 2.0)], "skiplist"));
    assert_eq!(zset_of(&restore("old_zset_ziplist_t12")), vec![("a".to_string(), 1.0), ("b".to_string(), 2.5)]);
    let t3 = restore("old_zset_textdouble_t3");
    let want = vec![("b".to_string(), f64::NEG_INFINITY), ("c".to_string(), 0.1), ("a".to_string(), 1.5)];
    assert_eq!((zset_of(&t3), t3.encoding()), (want, "listpack"));
}

#[test]
fn streams_decode() {
    let basic = restore("stream_basic");
    let s = stream_of(&basic);
    assert_eq!(entries(s), strs(&["1700000000000-0 temp=20 hum=55", "1700000000000-1 temp=21 hum=56", "1700000000500-0 other=x"]));
    assert_eq!(
        (s.length, s.last_id, s.first_id, s.entries_added),
        (3, StreamId::new(1700000000500, 0), StreamId::new(1700000000000, 0), 3)
    );

    let deleted = restore("stream_deleted");
    let s = stream_of(&deleted);
    assert_eq!(entries(s), strs(&["1-1 a=1", "2-1 a=3", "4-1 a=5"]));
    assert_eq!((s.length, s.max_deleted_id, s.entries_added), (3, StreamId::new(3, 1), 5));

    let cg = restore("stream_cgroups");
    let s = stream_of(&cg);
    assert_eq!(entries(s).len(), 4);
    let g1 = s.group(b"g1").expect("g1");
    assert_eq!((g1.last_id, g1.entries_read), (StreamId::new(200, 1), Some(4)));
    let pel: Vec<(String, String, u64)> = g1.pel.iter().map(|(id, p)| (id.to_string(), text(&p.consumer), p.delivery_count)).collect();
    let want = [("100-1", "bob", 5), ("100-3", "bob", 1), ("200-1", "bob", 2)];
    assert_eq!(pel, want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), *c)).collect::<Vec<_>>());
    assert_eq!(g1.pel.get(&StreamId::new(100, 1)).unwrap().delivery_time, 1700000000123);
    let names: Vec<String> = g1.consumers.keys().map(|n| text(n)).collect();
    assert_eq!(names, strs(&["alice", "bob"]));
    assert_eq!(g1.consumers.get(&Arc::<[u8]>::from(&b"bob"[..])).unwrap().pending.len(), 3);
    let g2 = s.group(b"g2").expect("g2");
    assert_eq!((g2.last_id, g2.entries_read, g2.pel.len(), g2.consumers.len()), (StreamId::new(100, 2), None, 0, 0));

    let empty = restore("stream_empty_group");
    let s = stream_of(&empty);
    assert_eq!((s.length, s.nodes(), s.group(b"grp").map(|g| g.entries_read)), (0, 0, Some(None)));

    let big = restore("stream_big");
    let s = stream_of(&big);
    let want: Vec<String> = (0..250).map(|i| format!("{}-0 field=value-{i} n={i}", 1000 + i)).collect();
    assert_eq!((entries(s), s.nodes()), (want, 3));

    let all = restore("stream_all_deleted");
    let s = stream_of(&all);
    assert_eq!((s.length, s.nodes(), s.last_id, s.max_deleted_id, s.entries_added), (0, 0, StreamId::new(5, 2), StreamId::new(5, 2), 2));

    let v1 = restore("old_stream_v1_t15");
    let s = stream_of(&v1);
    assert_eq!((entries(s), s.first_id, s.entries_added), (strs(&["10-1 f=v"]), StreamId::new(10, 1), 1));
    let g = s.group(b"g").expect("g");
    assert_eq!(g.entries_read, Some(1));
    assert_eq!(text(&g.pel.get(&StreamId::new(10, 1)).unwrap().consumer), "alice");
}

#[test]
fn what_we_write_is_what_redis_wrote() {
    for name in BYTE_EXACT {
        let p = payload(name);
        assert_eq!(encode(&restore(name)), p, "{name}");
    }
    // The rest is at least read back the same.
    for (name, _) in VECTORS.iter().filter(|(n, _)| !n.ends_with("_dup_t13")) {
        let v = restore(name);
        let again = decode(&encode(&v), Limits::unlimited()).unwrap();
        assert_eq!(describe(&again), describe(&v), "{name}");
        assert_eq!((again.mem(), again.encoding()), (v.mem(), v.encoding()), "{name}");
    }
}

/// Contents in a defined order, for comparing values.
fn describe(v: &Value) -> String {
    match v {
        Value::Str(..) => format!("{:?}", string_of(v)),
        Value::List(_) => format!("{:?}", list_of(v)),
        Value::Hash(_) => format!("{:?}", sorted_hash_of(v)),
        Value::Set(_) => format!("{:?}", set_of(v)),
        Value::ZSet(_) => format!("{:?}", zset_of(v)),
        Value::Stream(s) => {
            let groups: Vec<String> = s.groups().map(|(n, g)| format!("{}:{:?}", text(n), g)).collect();
            let meta = (s.length, s.last_id, s.first_id, s.max_deleted_id, s.entries_added);
            format!("{:?} {meta:?} {groups:?}", entries(s))
        }
    }
}

#[test]
fn every_type_round_trips() {
    let mut values = vec![Value::string(b"hello"), Value::string(b"12"), Value::string(&b"abc".repeat(1000)), Value::string(&[0xff; 3])];
    let mut hll = crate::store::hll::new();
    for i in 0..20 {
        crate::store::hll::add(&mut hll, format!("e{i}").as_bytes(), 3000).unwrap();
    }
    values.push(Value::Str(hll.as_slice().into(), true));
    crate::store::hll::to_dense(&mut hll).unwrap();
    values.push(Value::Str(hll.as_slice().into(), true));
    for n in [1, 5, 3000] {
        let mut l = ListValue::default();
        (0..n).for_each(|i| l.push(format!("e{i}").repeat(i % 7 + 1).as_bytes(), false));
        values.push(Value::List(Box::new(l)));
        let mut h = HashValue::default();
        (0..n).for_each(|i| {
            h.insert(format!("f{i}").as_bytes(), i.to_string().as_bytes());
        });
        values.push(Value::Hash(Box::new(h)));
        let mut ints = SetValue::default();
        let mut strings = SetValue::default();
        (0..n).for_each(|i| {
            ints.insert((i as i64 * 40_000 - 7).to_string().as_bytes());
            strings.insert(format!("m{i}").as_bytes());
        });
        values.extend([Value::Set(Box::new(ints)), Value::Set(Box::new(strings))]);
        let mut z = ZSetValue::default();
        (0..n).for_each(|i| {
            z.insert(format!("m{i}").as_bytes(), [0.5, -2.0, 1e20, 3.0, f64::INFINITY][i % 5] * i as f64);
        });
        values.push(Value::ZSet(Box::new(z)));
    }
    let mut long = HashValue::default();
    long.insert(b"f", &[b'v'; 100]);
    values.push(Value::Hash(Box::new(long)));
    values.push(Value::Stream(Box::new(grouped_stream())));
    for v in values {
        let back = decode(&encode(&v), Limits::unlimited()).unwrap_or_else(|e| panic!("{e}: {}", describe(&v)));
        assert_eq!((describe(&back), back.mem(), back.encoding()), (describe(&v), v.mem(), v.encoding()));
    }
}

/// A stream with several nodes, deletions, and two groups with consumers.
fn grouped_stream() -> StreamValue {
    let mut s = StreamValue::default();
    for ms in 1..=300u64 {
        let fields: &[(&[u8], &[u8])] = if ms % 3 == 0 { &[(b"a", b"1"), (b"b", b"x")] } else { &[(b"a", b"2")] };
        s.append(Some((StreamId::new(ms, 0), true)), 0, fields, 4096, 100).unwrap();
    }
    for ms in [5, 6, 150] {
        s.delete(StreamId::new(ms, 0));
    }
    s.after_delete(&[StreamId::new(5, 0), StreamId::new(6, 0), StreamId::new(150, 0)]);
    s.create_group(b"g1", StreamId::new(10, 0), Some(8));
    s.create_group(b"g0", StreamId::MIN, None);
    let (alice, bob): (Arc<[u8]>, Arc<[u8]>) = (Arc::from(&b"alice"[..]), Arc::from(&b"bob"[..]));
    s.with_group(b"g1", |g| {
        for ms in 1..=4 {
            g.deliver(StreamId::new(ms, 0), if ms % 2 == 0 { &alice } else { &bob }, 1000 + ms);
        }
        g.consumer_mut(&Arc::from(&b"idle"[..]), 7);
    });
    s
}

#[test]
fn stream_counters_past_redis_s_signed_range_are_refused() {
    let restore_with = |f: &dyn Fn(&mut StreamValue)| {
        let mut s = grouped_stream();
        f(&mut s);
        decode(&encode(&Value::Stream(Box::new(s))), Limits::unlimited())
    };
    assert!(restore_with(&|_| {}).is_ok());
    assert_eq!(restore_with(&|s| s.entries_added = u64::MAX).unwrap_err(), DumpError::BadData);
    assert_eq!(restore_with(&|s| s.entries_added = 1 << 63).unwrap_err(), DumpError::BadData);
    let read_past = |s: &mut StreamValue| {
        s.with_group(b"g1", |g| g.entries_read = Some(1 << 63));
    };
    assert_eq!(restore_with(&read_past).unwrap_err(), DumpError::BadData);
    // Counts below the stream's length, IDs past the last one: corrupt.
    assert_eq!(restore_with(&|s| s.entries_added = s.length - 1).unwrap_err(), DumpError::BadData);
    assert_eq!(restore_with(&|s| s.last_id = StreamId::new(299, 0)).unwrap_err(), DumpError::BadData);
    assert_eq!(restore_with(&|s| s.length += 1).unwrap_err(), DumpError::BadData);
    // Unknown entries-read (-1) and a huge delivery count are Redis's own.
    let unknown = |s: &mut StreamValue| {
        s.with_group(b"g1", |g| {
            g.entries_read = None;
            let ids: Vec<StreamId> = g.pel.keys().copied().collect();
            ids.iter().for_each(|id| g.pel.get_mut(id).expect("pending").delivery_count = u64::MAX);
        });
    };
    assert!(restore_with(&unknown).is_ok());
}

#[test]
fn envelope_is_checked_first() {
    let mut p = payload("string_short");
    assert_eq!(decode(&p[..9], Limits::unlimited()).unwrap_err(), DumpError::VersionOrChecksum);
    let n = p.len();
    p[n - 1] ^= 1;
    assert_eq!(decode(&p, Limits::unlimited()).unwrap_err(), DumpError::VersionOrChecksum);
    let reseal = |body: &[u8], version: u16| {
        let mut out = body.to_vec();
        out.extend_from_slice(&version.to_le_bytes());
        let crc = crc64(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    };
    let body = &payload("string_short")[..n - FOOTER];
    assert_eq!(decode(&reseal(body, 11), Limits::unlimited()).unwrap_err(), DumpError::VersionOrChecksum);
    assert_eq!(string_of(&decode(&reseal(body, 9), Limits::unlimited()).unwrap()), b"hello");
    assert_eq!(string_of(&decode(&reseal(body, 0), Limits::unlimited()).unwrap()), b"hello");
    let bad = |body: &[u8]| decode(&reseal(body, 10), Limits::unlimited()).unwrap_err();
    assert_eq!(bad(b""), DumpError::BadData);
    // Truncated, trailing bytes, unknown types, modules, empty collections.
    for body in [
        &b"\x00\x05hel"[..],
        b"\x00\x05helloX",
        b"\x08\x00",
        b"\x07\x00",
        b"\x14\x00",
        b"\x12\x00",
        b"\x01\x00",
        b"\x04\x00",
        b"\x02\x02\x01a\x01a",
        b"\x00\x82abc",
        b"\x00\xc4abc",
        b"\x00\xc3\x02\x00\x01aa",
        b"\x12\x01\x03\x01a",
        b"\x12\x01\x01\x00",
    ] {
        assert_eq!(bad(body), DumpError::BadData, "{body:?}");
    }
    assert_eq!(string_of(&decode(&reseal(b"\x00\x80\x00\x00\x00\x03abc", 10), Limits::unlimited()).unwrap()), b"abc");
}

#[test]
fn decoded_size_is_bounded_before_allocating() {
    // 5 MB of one byte compresses to about 60 KB: refused on its declared
    // length with 1 MB to spare, and at once with a huge claim.
    let big = vec![b'z'; 5 << 20];
    let p = encode(&Value::string(&big));
    assert!(p.len() < 100_000);
    let tight = Limits { max_bulk: 512 << 20, max_decoded: 1 << 20 };
    assert_eq!(decode(&p, tight).unwrap_err(), DumpError::TooLarge);
    assert_eq!(string_of(&decode(&p, Limits::unlimited()).unwrap()).len(), 5 << 20);
    let mut claim = b"\x00\xc3\x04\x81\x00\x00\x01\x00\x00\x00\x00\x00\x01aaaa".to_vec();
    seal(&mut claim);
    assert_eq!(decode(&claim, Limits::unlimited()).unwrap_err(), DumpError::BadData);
    // A list of small elements is refused as it outgrows the room.
    let mut l = ListValue::default();
    (0..100_000).for_each(|_| l.push(b"1", false));
    let p = encode(&Value::List(Box::new(l)));
    assert_eq!(decode(&p, tight).unwrap_err(), DumpError::TooLarge);
    assert_eq!(decode(&p, Limits { max_bulk: 10, max_decoded: usize::MAX }).unwrap_err(), DumpError::BadData);
}

/// Deterministic mutations of valid payloads, resealed so that the parser
/// (not the checksum) meets them: every outcome is a value or an error,
/// and every value holds our invariants (it encodes and decodes again, and
/// stream operations work on it).
#[test]
fn mutated_payloads_never_panic() {
    let seeds = [
        "hash_small",
        "zset_small",
        "list_small",
        "list_plain_nodes",
        "set_intset16",
        "set_strings_small",
        "zset_big_value",
        "string_lzf",
        "stream_basic",
        "stream_deleted",
        "stream_cgroups",
        "old_list_ziplist_t10",
        "old_hash_ziplist_t13",
        "old_zset_ziplist_t12",
        "old_hash_zipmap_t9",
        "old_list_quicklist_v1_t14",
        "old_zset_textdouble_t3",
        "old_stream_v1_t15",
    ];
    // The same with their containers stored uncompressed, so that
    // mutations reach listpacks, ziplists and intsets rather than LZF.
    let bodies: Vec<Vec<u8>> = seeds
        .iter()
        .map(|n| payload(n))
        .map(|p| p[..p.len() - FOOTER].to_vec())
        .chain(seeds.iter().filter_map(|n| uncompressed(n)))
        .collect();
    let mut rng = fastrand::Rng::with_seed(0xd0_5e);
    let limits = Limits { max_bulk: 1 << 20, max_decoded: 1 << 20 };
    let (mut ok, mut bad) = (0, 0);
    for round in 0..30_000 {
        let mut body = bodies[round % bodies.len()].clone();
        for _ in 0..rng.usize(1..4) {
            mutate(&mut rng, &mut body);
        }
        seal(&mut body);
        match decode(&body, limits) {
            Ok(v) => {
                ok += 1;
                exercise(&v);
            }
            Err(_) => bad += 1,
        }
    }
    assert!(ok > 1000 && bad > 10_000, "ok {ok}, refused {bad}");
}

/// A payload's body with its one container (or quicklist node) written
/// as a raw string.
fn uncompressed(name: &str) -> Option<Vec<u8>> {
    let p = payload(name);
    let body = &p[..p.len() - FOOTER];
    let mut r = rdb::Reader::new(&body[1..], Limits::unlimited());
    let mut w = rdb::Writer::default();
    w.u8(body[0]);
    match body[0] {
        9..=13 | 16 | 17 => {}
        18 => {
            let n = r.len().ok()?;
            w.len(n);
            for _ in 0..n {
                let container = r.len().ok()?;
                w.len(container);
                let blob = r.string().ok()?;
                w.len(blob.len() as u64);
                w.out.extend_from_slice(&blob);
            }
            return Some(w.out);
        }
        _ => return None,
    }
    let blob = r.string().ok()?;
    w.len(blob.len() as u64);
    w.out.extend_from_slice(&blob);
    Some(w.out)
}

fn mutate(rng: &mut fastrand::Rng, body: &mut Vec<u8>) {
    if body.is_empty() {
        body.push(rng.u8(..));
        return;
    }
    let at = rng.usize(..body.len());
    match rng.u8(..7) {
        0 => body[at] ^= 1 << rng.u8(..8),
        1 => body.truncate(at),
        2 => body.extend((0..rng.usize(1..6)).map(|_| rng.u8(..))),
        3 => body.insert(at, rng.u8(..)),
        4 => body[at] = [0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xc0, 0xc3, 0xf0, 0xfe, 0xff][rng.usize(..12)],
        5 => {
            body.remove(at);
        }
        _ => body[at] = body[at].wrapping_add(1),
    }
}

/// Uses a decoded value the way commands would.
fn exercise(v: &Value) {
    let again = decode(&encode(v), Limits::unlimited()).expect("what we decoded encodes validly");
    assert_eq!(again.mem(), v.mem());
    if let Value::Stream(s) = v {
        let mut s = (**s).clone();
        let ids: Vec<StreamId> = {
            let mut ids = Vec::new();
            s.range(StreamId::MIN, StreamId::MAX, true, |e| {
                ids.push(e.id);
                true
            });
            ids
        };
        assert_eq!(ids.len() as u64, s.length);
        for (_, g) in s.groups() {
            let _ = s.lag(g);
            let _ = g.entries_read.map(|n| n + 1);
        }
        if let Some(&id) = ids.first() {
            assert!(s.delete(id));
        }
        let _ = s.append(None, s.last_id.ms.saturating_add(1), &[(b"x", b"y")], 4096, 100);
        s.trim(crate::store::stream::Trim::MaxLen(1), false, 0);
        let _ = s.entries_before(s.last_id);
    }
}
