//! Redis's listpack: a flat byte array of strings and integers, each
//! readable from either end. Stream nodes are kept as listpacks (so a
//! node's size, and where Redis would start a new node, are exactly
//! Redis's), and DUMP/RESTORE payloads carry them.
//!
//! Layout: total bytes (u32 LE), element count (u16 LE; 65535 = too many to
//! count), the entries, and 0xFF. An entry is an encoding byte with its data
//! (a small unsigned int, a 13/16/24/32/64-bit signed int, or a string with
//! a 6/12/32-bit length) followed by its "backlen": the size of encoding and
//! data in 7-bit groups, written so it can be read backwards.

pub const HEADER: usize = 6;
const END: u8 = 0xff;
/// The element count field saturates here.
const COUNT_UNKNOWN: u16 = u16::MAX;

/// One element: listpacks store strings that read as integers as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Item<'_> {
    /// The element as Redis replies with it (integers in decimal).
    pub fn to_bytes(self) -> Vec<u8> {
        match self {
            Item::Int(n) => n.to_string().into_bytes(),
            Item::Str(s) => s.to_vec(),
        }
    }

    pub fn as_int(self) -> Option<i64> {
        match self {
            Item::Int(n) => Some(n),
            Item::Str(s) => crate::protocol::parse::parse_i64(s),
        }
    }

    /// Whether the element equals `b` as Redis compares them (by content).
    pub fn eq_bytes(self, b: &[u8]) -> bool {
        match self {
            Item::Str(s) => s == b,
            Item::Int(n) => crate::protocol::parse::parse_i64(b) == Some(n) && canonical_int(b).is_some(),
        }
    }
}

/// An empty listpack.
pub fn new() -> Vec<u8> {
    let mut lp = Vec::with_capacity(64);
    lp.extend_from_slice(&[0; HEADER]);
    lp.push(END);
    finish(&mut lp, 0);
    lp
}

pub fn len(lp: &[u8]) -> usize {
    lp.len()
}

fn set_header(lp: &mut [u8], count: usize) {
    let total = lp.len() as u32;
    lp[..4].copy_from_slice(&total.to_le_bytes());
    let n = if count < COUNT_UNKNOWN as usize { count as u16 } else { COUNT_UNKNOWN };
    lp[4..6].copy_from_slice(&n.to_le_bytes());
}

fn finish(lp: &mut [u8], count: usize) {
    set_header(lp, count);
}

/// The element count (counted when the header saturated).
pub fn count(lp: &[u8]) -> usize {
    match u16::from_le_bytes([lp[4], lp[5]]) {
        COUNT_UNKNOWN => Iter::new(lp).count(),
        n => n as usize,
    }
}

/// A string that is an integer written the canonical way (what Redis
/// stores as an integer).
fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let n = crate::protocol::parse::parse_i64(s)?;
    (n.to_string().as_bytes() == s).then_some(n)
}

/// The encoding and data of an integer.
fn encode_int(v: i64, out: &mut Vec<u8>) {
    if (0..=127).contains(&v) {
        out.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = (v as u64) & 0x1fff;
        out.push(0xc0 | (u >> 8) as u8);
        out.push(u as u8);
    } else if (-32768..=32767).contains(&v) {
        out.push(0xf1);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (-8_388_608..=8_388_607).contains(&v) {
        out.push(0xf2);
        out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        out.push(0xf3);
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        out.push(0xf4);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn encode_str(s: &[u8], out: &mut Vec<u8>) {
    let n = s.len();
    if n < 64 {
        out.push(0x80 | n as u8);
    } else if n < 4096 {
        out.push(0xe0 | (n >> 8) as u8);
        out.push(n as u8);
    } else {
        out.push(0xf0);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
}

/// The backlen of an entry whose encoding and data take `l` bytes.
fn encode_backlen(l: usize, out: &mut Vec<u8>) {
    let groups = match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    for g in (0..groups).rev() {
        let bits = ((l >> (7 * g)) & 127) as u8;
        out.push(if g == groups - 1 { bits } else { bits | 128 });
    }
}

/// One whole entry (encoding, data, backlen) for `item`.
fn entry(item: Item, out: &mut Vec<u8>) {
    let start = out.len();
    match item {
        Item::Int(v) => encode_int(v, out),
        Item::Str(s) => match canonical_int(s) {
            Some(v) => encode_int(v, out),
            None => encode_str(s, out),
        },
    }
    let l = out.len() - start;
    encode_backlen(l, out);
}

/// Appends an element (a string that reads as an integer is stored as one).
pub fn append(lp: &mut Vec<u8>, item: Item) {
    let n = count(lp);
    lp.pop();
    entry(item, lp);
    lp.push(END);
    finish(lp, n + 1);
}

pub fn append_int(lp: &mut Vec<u8>, v: i64) {
    append(lp, Item::Int(v));
}

pub fn append_str(lp: &mut Vec<u8>, s: &[u8]) {
    append(lp, Item::Str(s));
}

/// Replaces the element at byte offset `at` (from [`Iter::positions`]) with
/// the integer `v`, moving what follows when its size changes; returns the
/// offset of the element after it.
pub fn replace_int(lp: &mut Vec<u8>, at: usize, v: i64) -> usize {
    let old = entry_size(lp, at).expect("a valid entry");
    let mut new = Vec::with_capacity(12);
    entry(Item::Int(v), &mut new);
    let n = count(lp);
    lp.splice(at..at + old, new.iter().copied());
    finish(lp, n);
    at + new.len()
}

/// Decodes the entry at `at`: the item and the size of encoding + data.
fn decode(lp: &[u8], at: usize) -> Option<(Item<'_>, usize)> {
    let b = *lp.get(at)?;
    let bytes = |n: usize| lp.get(at + 1..at + 1 + n);
    let sign = |u: u64, bits: u32| ((u << (64 - bits)) as i64) >> (64 - bits);
    Some(match b {
        0x00..=0x7f => (Item::Int(b as i64), 1),
        0x80..=0xbf => {
            let n = (b & 0x3f) as usize;
            (Item::Str(lp.get(at + 1..at + 1 + n)?), 1 + n)
        }
        0xc0..=0xdf => {
            let u = (((b & 0x1f) as u64) << 8) | *bytes(1)?.first()? as u64;
            (Item::Int(sign(u, 13)), 2)
        }
        0xe0..=0xef => {
            let n = (((b & 0x0f) as usize) << 8) | *bytes(1)?.first()? as usize;
            (Item::Str(lp.get(at + 2..at + 2 + n)?), 2 + n)
        }
        0xf0 => {
            let n = u32::from_le_bytes(bytes(4)?.try_into().ok()?) as usize;
            (Item::Str(lp.get(at + 5..(at + 5).checked_add(n)?)?), 5 + n)
        }
        0xf1 => (Item::Int(i16::from_le_bytes(bytes(2)?.try_into().ok()?) as i64), 3),
        0xf2 => {
            let d = bytes(3)?;
            (Item::Int(sign(d[0] as u64 | (d[1] as u64) << 8 | (d[2] as u64) << 16, 24)), 4)
        }
        0xf3 => (Item::Int(i32::from_le_bytes(bytes(4)?.try_into().ok()?) as i64), 5),
        0xf4 => (Item::Int(i64::from_le_bytes(bytes(8)?.try_into().ok()?)), 9),
        _ => return None,
    })
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// The whole size of the entry at `at` (encoding, data, backlen).
fn entry_size(lp: &[u8], at: usize) -> Option<usize> {
    let (_, l) = decode(lp, at)?;
    Some(l + backlen_size(l))
}

/// The elements in order, each with its byte offset.
pub struct Iter<'a> {
    lp: &'a [u8],
    at: usize,
}

impl<'a> Iter<'a> {
    pub fn new(lp: &'a [u8]) -> Iter<'a> {
        Iter { lp, at: HEADER }
    }

    /// Elements with the offset each starts at (for [`replace_int`]).
    pub fn positions(self) -> impl Iterator<Item = (usize, Item<'a>)> {
        let mut it = self;
        std::iter::from_fn(move || {
            let at = it.at;
            it.next().map(|item| (at, item))
        })
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Item<'a>;
    fn next(&mut self) -> Option<Item<'a>> {
        if self.lp.get(self.at).is_none_or(|&b| b == END) {
            return None;
        }
        let (item, l) = decode(self.lp, self.at)?;
        self.at += l + backlen_size(l);
        Some(item)
    }
}

/// Whether `lp` is a well-formed listpack: header, every entry's encoding,
/// data and backlen within bounds and consistent, the terminator last, and
/// the count right. Reading a checked listpack cannot go out of bounds.
pub fn validate(lp: &[u8]) -> bool {
    if lp.len() < HEADER + 1 || u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize != lp.len() || lp[lp.len() - 1] != END {
        return false;
    }
    let (mut at, mut n) = (HEADER, 0usize);
    while at < lp.len() - 1 {
        let Some((_, l)) = decode(&lp[..lp.len() - 1], at) else { return false };
        let b = backlen_size(l);
        let Some(back) = lp.get(at + l..at + l + b) else { return false };
        let mut expect = Vec::with_capacity(5);
        encode_backlen(l, &mut expect);
        if back != expect.as_slice() {
            return false;
        }
        at += l + b;
        n += 1;
    }
    let header = u16::from_le_bytes([lp[4], lp[5]]);
    at == lp.len() - 1 && (header == COUNT_UNKNOWN && n >= COUNT_UNKNOWN as usize || header as usize == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_round_trips() {
        let ints = [0, 127, 128, -1, 4095, -4096, 4096, 32767, -32768, 40000, -8_388_608, 8_388_608, i32::MIN as i64, i64::MAX, i64::MIN];
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let mut lp = new();
        for &v in &ints {
            append_int(&mut lp, v);
        }
        for s in [&b""[..], b"abc", b"12", b"-0", b"007", &mid, &long] {
            append_str(&mut lp, s);
        }
        assert!(validate(&lp));
        let items: Vec<Vec<u8>> = Iter::new(&lp).map(Item::to_bytes).collect();
        let mut want: Vec<Vec<u8>> = ints.iter().map(|v| v.to_string().into_bytes()).collect();
        want.extend([b"".to_vec(), b"abc".to_vec(), b"12".to_vec(), b"-0".to_vec(), b"007".to_vec(), mid.clone(), long.clone()]);
        assert_eq!(items, want);
        assert_eq!(count(&lp), want.len());
        // "12" is stored as an integer, "-0" and "007" as strings.
        assert_eq!(Iter::new(&lp).nth(ints.len() + 2), Some(Item::Int(12)));
        assert_eq!(Iter::new(&lp).nth(ints.len() + 3), Some(Item::Str(b"-0")));
    }

    #[test]
    fn replacing_an_integer_resizes_in_place() {
        let mut lp = new();
        append_int(&mut lp, 127);
        append_str(&mut lp, b"tail");
        let (at, _) = Iter::new(&lp).positions().next().unwrap();
        replace_int(&mut lp, at, 128);
        assert!(validate(&lp));
        assert_eq!(Iter::new(&lp).collect::<Vec<_>>(), [Item::Int(128), Item::Str(b"tail")]);
        replace_int(&mut lp, at, 5);
        assert!(validate(&lp));
        assert_eq!(Iter::new(&lp).collect::<Vec<_>>(), [Item::Int(5), Item::Str(b"tail")]);
    }

    #[test]
    fn redis_bytes_for_a_small_hash() {
        // HSET h a 1 b hello, as Redis 7.0 lays out the hash's listpack.
        let mut lp = new();
        for s in [&b"a"[..], b"1", b"b", b"hello"] {
            append_str(&mut lp, s);
        }
        let want: &[u8] = &[0x16, 0, 0, 0, 4, 0, 0x81, b'a', 2, 0x01, 1, 0x81, b'b', 2, 0x85, b'h', b'e', b'l', b'l', b'o', 6, 0xff];
        assert_eq!(lp, want);
    }

    #[test]
    fn damaged_listpacks_are_refused() {
        let mut lp = new();
        append_str(&mut lp, b"hello");
        append_int(&mut lp, 1000);
        assert!(validate(&lp));
        for i in 0..lp.len() {
            for x in [0u8, 1, 0x7f, 0x80, 0xf0, 0xff] {
                let mut bad = lp.clone();
                bad[i] = x;
                let _ = validate(&bad);
                let _ = Iter::new(&bad).count();
            }
        }
        assert!(!validate(&lp[..lp.len() - 1]));
    }
}
