//! The durable form of an entry (key, expiry, value), written by snapshots
//! and read back at start-up. Collections are written element by element
//! and rebuilt through their own insert paths, so byte accounting and
//! encodings come out as if the data had been written by commands.

use ferrite_policy_abi::{DecodeError, Reader, Writer};

use super::keyspace::Entry;
use super::value::{HashValue, ListValue, SetValue, Value, ZSetValue};

const STR: u8 = 0;
const STR_RAW: u8 = 1;
const LIST: u8 = 2;
const HASH: u8 = 3;
const SET: u8 = 4;
const ZSET: u8 = 5;
const STREAM: u8 = 6;

/// Appends `key`, `e`'s expiry and value.
pub fn encode_entry(key: &[u8], e: &Entry, w: &mut Writer) {
    w.bytes(key).u64(e.expire_at().unwrap_or(0));
    encode_value(&e.value, w);
}

fn encode_value(v: &Value, w: &mut Writer) {
    match v {
        Value::Str(s, raw) => {
            w.u8(if *raw { STR_RAW } else { STR }).bytes(s);
        }
        Value::List(l) => {
            w.u8(LIST).u32(l.len() as u32);
            l.iter().for_each(|e| {
                w.bytes(e);
            });
        }
        Value::Hash(h) => {
            w.u8(HASH).u32(h.len() as u32);
            h.iter().for_each(|(f, v)| {
                w.bytes(f).bytes(v);
            });
        }
        Value::Set(s) => {
            w.u8(SET).u32(s.len() as u32);
            s.members().into_iter().for_each(|m| {
                w.bytes(m);
            });
        }
        Value::ZSet(z) => {
            w.u8(ZSET).u32(z.len() as u32);
            z.iter().for_each(|(m, s)| {
                w.bytes(m).f64(s);
            });
        }
        Value::Stream(s) => {
            w.u8(STREAM);
            super::stream::durable::encode(s, w);
        }
    }
}

/// A decoded entry: key, value, absolute expiry (if any).
pub struct Decoded<'a> {
    pub key: &'a [u8],
    pub value: Value,
    pub expire_at: Option<u64>,
}

pub fn decode_entry<'a>(r: &mut Reader<'a>) -> Result<Decoded<'a>, DecodeError> {
    let key = r.bytes()?;
    let expire_at = Some(r.u64()?).filter(|&t| t != 0);
    let value = match r.u8()? {
        t @ (STR | STR_RAW) => Value::Str(r.bytes()?.into(), t == STR_RAW),
        LIST => {
            let mut l = ListValue::default();
            for _ in 0..r.count(4)? {
                l.push(r.bytes()?, false);
            }
            Value::List(Box::new(l))
        }
        HASH => {
            let mut h = HashValue::default();
            for _ in 0..r.count(8)? {
                let (f, v) = (r.bytes()?, r.bytes()?);
                h.insert(f, v);
            }
            Value::Hash(Box::new(h))
        }
        SET => {
            let mut s = SetValue::default();
            for _ in 0..r.count(4)? {
                s.insert(r.bytes()?);
            }
            Value::Set(Box::new(s))
        }
        ZSET => {
            let mut z = ZSetValue::default();
            for _ in 0..r.count(12)? {
                let (m, score) = (r.bytes()?, r.f64()?);
                z.insert(m, score);
            }
            Value::ZSet(Box::new(z))
        }
        STREAM => Value::Stream(Box::new(super::stream::durable::decode(r)?)),
        t => return Err(DecodeError::BadTag(t)),
    };
    Ok(Decoded { key, value, expire_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value, expire: Option<u64>) -> Value {
        let mut e = Entry::new(v, 0);
        e.set_expire(expire);
        let mut w = Writer::default();
        encode_entry(b"k", &e, &mut w);
        let mut r = Reader::new(&w.buf);
        let d = decode_entry(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!((d.key, d.expire_at), (b"k".as_slice(), expire));
        d.value
    }

    /// Contents in their defined order (a sorted set's score map has none).
    fn describe(v: &Value) -> String {
        match v {
            Value::ZSet(z) => format!("{:?}", z.iter().collect::<Vec<_>>()),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn every_type_round_trips_with_accounting_and_encoding() {
        let mut l = ListValue::default();
        ["a", "b", "c"].iter().for_each(|x| l.push(x.as_bytes(), false));
        let mut h = HashValue::default();
        h.insert(b"f", b"v");
        let mut s = SetValue::default();
        s.insert(b"1");
        s.insert(b"x");
        let mut z = ZSetValue::default();
        z.insert(b"m", 1.5);
        z.insert(b"n", -2.0);
        let mut st = super::super::stream::StreamValue::default();
        for ms in 1..=3 {
            st.append(None, ms, &[(b"f", b"v")], 4096, 100).unwrap();
        }
        st.create_group(b"g", super::super::stream::StreamId::new(1, 0), Some(1));
        st.with_group(b"g", |g| g.deliver(super::super::stream::StreamId::new(1, 0), &std::sync::Arc::from(&b"c"[..]), 7));
        for v in [
            Value::string(b"hello"),
            Value::Str(b"raw".as_slice().into(), true),
            Value::List(Box::new(l)),
            Value::Hash(Box::new(h)),
            Value::Set(Box::new(s)),
            Value::ZSet(Box::new(z)),
            Value::Stream(Box::new(st)),
        ] {
            let back = round_trip(v.clone(), Some(42));
            assert_eq!((back.kind(), back.mem(), back.encoding()), (v.kind(), v.mem(), v.encoding()));
            assert_eq!(describe(&back), describe(&v));
        }
    }
}
