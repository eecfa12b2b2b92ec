//! The compact containers older payloads (and 7.0's intsets) carry:
//! ziplists (Redis 2.6 to 6.2), zipmaps (up to 2.4) and intsets. Each is
//! validated whole before any element is used, as Redis always validates
//! ziplists and zipmaps: every entry in bounds, sizes consistent, counts
//! right, the terminator where it must be.

use std::borrow::Cow;

const ZL_HEADER: usize = 10;
const END: u8 = 0xff;

/// One ziplist or zipmap element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl<'a> Elem<'a> {
    /// The element as text (integers in decimal).
    pub fn bytes(self) -> Cow<'a, [u8]> {
        match self {
            Elem::Int(v) => Cow::Owned(itoa::Buffer::new().format(v).as_bytes().to_vec()),
            Elem::Str(s) => Cow::Borrowed(s),
        }
    }
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |acc, &x| acc << 8 | x as u64)
}

/// Reads the entry at `at` of a ziplist whose terminator is at `end`:
/// (prevlen, element, whole entry size).
fn zl_entry(zl: &[u8], at: usize, end: usize) -> Option<(usize, Elem<'_>, usize)> {
    let body = &zl[..end];
    let (prevlen, mut p) = match *body.get(at)? {
        0xfe => (le(body.get(at + 1..at + 5)?) as usize, at + 5),
        b => (b as usize, at + 1),
    };
    let enc = *body.get(p)?;
    p += 1;
    let int = |p: usize, n: usize| -> Option<i64> {
        let v = le(body.get(p..p + n)?);
        Some(((v << (64 - 8 * n)) as i64) >> (64 - 8 * n))
    };
    let (elem, data) = match enc {
        0x00..=0x3f => (Elem::Str(body.get(p..p + (enc as usize))?), enc as usize),
        0x40..=0x7f => {
            let n = ((enc as usize & 0x3f) << 8) | *body.get(p)? as usize;
            (Elem::Str(body.get(p + 1..p + 1 + n)?), n + 1)
        }
        0x80..=0xbf => {
            let n = u32::from_be_bytes(body.get(p..p + 4)?.try_into().ok()?) as usize;
            (Elem::Str(body.get(p + 4..(p + 4).checked_add(n)?)?), n + 4)
        }
        0xc0 => (Elem::Int(int(p, 2)?), 2),
        0xd0 => (Elem::Int(int(p, 4)?), 4),
        0xe0 => (Elem::Int(int(p, 8)?), 8),
        0xf0 => (Elem::Int(int(p, 3)?), 3),
        0xfe => (Elem::Int(int(p, 1)?), 1),
        0xf1..=0xfd => (Elem::Int((enc & 0x0f) as i64 - 1), 0),
        _ => return None,
    };
    Some((prevlen, elem, p + data - at))
}

/// Walks a ziplist's entries: (element, offset, prevlen, size).
struct ZlWalk<'a> {
    zl: &'a [u8],
    at: usize,
}

impl<'a> Iterator for ZlWalk<'a> {
    type Item = Option<(Elem<'a>, usize, usize, usize)>;
    fn next(&mut self) -> Option<Self::Item> {
        let end = self.zl.len() - 1;
        if self.at >= end {
            return None;
        }
        let Some((prevlen, elem, size)) = zl_entry(self.zl, self.at, end) else {
            self.at = end;
            return Some(None);
        };
        let at = self.at;
        self.at += size;
        Some(Some((elem, at, prevlen, size)))
    }
}

/// The elements of a ziplist, or None if it is malformed in any way: it is
/// validated whole first, and read again lazily (nothing is collected).
pub fn ziplist(zl: &[u8]) -> Option<impl Iterator<Item = Elem<'_>>> {
    if zl.len() < ZL_HEADER + 1 || le(&zl[..4]) as usize != zl.len() || zl[zl.len() - 1] != END {
        return None;
    }
    let (tail, count) = (le(&zl[4..8]) as usize, le(&zl[8..10]) as usize);
    let (mut prev, mut last, mut n, mut end) = (0, ZL_HEADER, 0usize, ZL_HEADER);
    for entry in (ZlWalk { zl, at: ZL_HEADER }) {
        let (_, at, prevlen, size) = entry?;
        if prevlen != prev {
            return None;
        }
        (last, prev, n, end) = (at, size, n + 1, at + size);
    }
    let count_ok = count == n || count == u16::MAX as usize && n >= count;
    let valid = end == zl.len() - 1 && tail == last && count_ok;
    valid.then(|| ZlWalk { zl, at: ZL_HEADER }.map(|e| e.expect("validated").0))
}

/// A zipmap length: one byte below 254, else 254 and four bytes.
fn zm_len(zm: &[u8], at: usize) -> Option<(usize, usize)> {
    match *zm.get(at)? {
        0xfe => Some((le(zm.get(at + 1..at + 5)?) as usize, 5)),
        0xff => None,
        b => Some((b as usize, 1)),
    }
}

/// A zipmap's field and value.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// The pair at `at` of a zipmap and where the next one starts.
fn zm_pair(zm: &[u8], at: usize) -> Option<(Pair<'_>, usize)> {
    let (flen, w) = zm_len(zm, at)?;
    let field = zm.get(at + w..(at + w).checked_add(flen)?)?;
    let at = at + w + flen;
    let (vlen, w) = zm_len(zm, at)?;
    let free = *zm.get(at + w)? as usize;
    let start = at + w + 1;
    let value = zm.get(start..start.checked_add(vlen)?)?;
    Some(((field, value), start + vlen + free))
}

/// The field-value pairs of a zipmap (Redis 2.4's small hashes), or None
/// if it is malformed; validated whole first, then read lazily.
pub fn zipmap(zm: &[u8]) -> Option<impl Iterator<Item = (&[u8], &[u8])>> {
    let count = *zm.first()? as usize;
    let (mut at, mut n) = (1, 0usize);
    while *zm.get(at)? != END {
        at = zm_pair(zm, at)?.1;
        n += 1;
    }
    let valid = at + 1 == zm.len() && (count >= 254 || count == n);
    let mut at = 1;
    valid.then(|| {
        std::iter::from_fn(move || {
            let (pair, next) = zm_pair(zm, at)?;
            at = next;
            Some(pair)
        })
    })
}

/// The members of an intset: width 2, 4 or 8, a count, the values
/// little-endian in strictly ascending order; None otherwise.
pub fn intset(blob: &[u8]) -> Option<impl Iterator<Item = i64> + '_> {
    let width = le(blob.get(..4)?) as usize;
    let n = le(blob.get(4..8)?) as usize;
    if ![2, 4, 8].contains(&width) || n == 0 || (blob.len() - 8) != n.checked_mul(width)? {
        return None;
    }
    let values = blob[8..].chunks_exact(width).map(move |c| {
        let v = le(c);
        ((v << (64 - 8 * width)) as i64) >> (64 - 8 * width)
    });
    let mut prev = None;
    for v in values.clone() {
        if prev.is_some_and(|p| p >= v) {
            return None;
        }
        prev = Some(v);
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ziplists_read_and_refuse_damage() {
        // "a", 5 (immediate), 300 (int16): prevlens 0, 3, 2.
        let mut zl = vec![0; 10];
        zl.extend_from_slice(&[0, 0x01, b'a', 3, 0xf6, 2, 0xc0, 0x2c, 0x01, 0xff]);
        let n = zl.len() as u32;
        zl[..4].copy_from_slice(&n.to_le_bytes());
        zl[4..8].copy_from_slice(&15u32.to_le_bytes());
        zl[8..10].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(ziplist(&zl).map(|z| z.collect::<Vec<_>>()), Some(vec![Elem::Str(b"a"), Elem::Int(5), Elem::Int(300)]));
        for i in 0..zl.len() {
            for x in [0u8, 1, 0x40, 0x80, 0xc0, 0xfe, 0xff] {
                let mut bad = zl.clone();
                bad[i] = x;
                let _ = ziplist(&bad).map(|z| z.count());
            }
            let _ = ziplist(&zl[..i]).map(|z| z.count());
        }
    }

    #[test]
    fn intsets_must_be_sorted_and_sized() {
        let mut blob = vec![2, 0, 0, 0, 2, 0, 0, 0];
        blob.extend_from_slice(&[0xf9, 0xff, 0x2c, 0x01]);
        assert_eq!(intset(&blob).map(|i| i.collect::<Vec<_>>()), Some(vec![-7, 300]));
        let mut unsorted = blob.clone();
        unsorted[8..].copy_from_slice(&[0x2c, 0x01, 0xf9, 0xff]);
        assert!(intset(&unsorted).is_none());
        assert!(intset(&blob[..11]).is_none());
        assert!(intset(&[2, 0, 0, 0, 0, 0, 0, 0]).is_none());
    }
}
