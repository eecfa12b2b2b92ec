//! LZF, the compression RDB strings use: runs of literals and
//! back-references of 3 to 264 bytes up to 8 KB back.
//!
//! The compressor makes the same choices as Redis's (a 64K-slot hash of the
//! next three bytes, the same match extension), so a payload Ferrite writes
//! is the one Redis writes for the same string.

const HASH_SLOTS: usize = 1 << 16;
const MAX_LITERAL: usize = 32;
const MAX_DISTANCE: usize = 1 << 13;
const MAX_MATCH: usize = 264;

/// The most output one input byte can stand for: a 3-byte reference
/// yields 264 bytes.
pub const MAX_EXPANSION: usize = 88;

/// Decompresses `input` into exactly `len` bytes, or None if it is corrupt
/// (a run or reference past either end, or another length). The caller
/// bounds `len`; nothing larger is ever allocated.
pub fn decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let run = input.get(i..i + ctrl + 1)?;
            if out.len() + run.len() > len {
                return None;
            }
            out.extend_from_slice(run);
            i += run.len();
            continue;
        }
        let mut n = ctrl >> 5;
        if n == 7 {
            n += *input.get(i)? as usize;
            i += 1;
        }
        let distance = ((ctrl & 0x1f) << 8) + *input.get(i)? as usize + 1;
        i += 1;
        n += 2;
        if distance > out.len() || out.len() + n > len {
            return None;
        }
        // Byte by byte: a reference may overlap what it is writing.
        let from = out.len() - distance;
        for k in 0..n {
            out.push(out[from + k]);
        }
    }
    (out.len() == len).then_some(out)
}

/// Hash slot of the three bytes whose value is `h` (Redis's "very fast" hash).
fn slot(h: u32) -> usize {
    ((h >> 8).wrapping_sub(h.wrapping_mul(5)) as usize) & (HASH_SLOTS - 1)
}

/// The compressed form of `input` if it fits in `limit` bytes.
pub fn compress(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n == 0 || limit == 0 {
        return None;
    }
    let mut table = vec![0usize; HASH_SLOTS];
    let mut out: Vec<u8> = Vec::with_capacity(limit);
    // The control byte of the literal run being written, reserved ahead.
    out.push(0);
    let mut lit = 0usize;
    let mut ip = 0usize;
    let mut h: u32 = (input[0] as u32) << 8 | input.get(1).copied().unwrap_or(0) as u32;
    while n > 2 && ip < n - 2 {
        h = h << 8 | input[ip + 2] as u32;
        let s = slot(h);
        // Position 0 can never be referenced: 0 means an empty slot.
        let r = table[s];
        table[s] = ip;
        let matches = r > 0 && ip - r - 1 < MAX_DISTANCE && input[r..r + 3] == input[ip..ip + 3];
        if !matches {
            if out.len() >= limit {
                return None;
            }
            lit += 1;
            out.push(input[ip]);
            ip += 1;
            if lit == MAX_LITERAL {
                close_run(&mut out, &mut lit);
            }
            continue;
        }
        let distance = ip - r - 1;
        let max_len = (n - ip - 2).min(MAX_MATCH);
        if out.len() - (lit == 0) as usize + 4 >= limit {
            return None;
        }
        if lit > 0 {
            let at = out.len() - lit - 1;
            out[at] = (lit - 1) as u8;
        } else {
            out.pop();
        }
        let len = match_len(input, r, ip, max_len) - 2;
        if len < 7 {
            out.push(((distance >> 8) + (len << 5)) as u8);
        } else {
            out.push(((distance >> 8) + (7 << 5)) as u8);
            out.push((len - 7) as u8);
        }
        out.push(distance as u8);
        out.push(0);
        lit = 0;
        ip += len + 2;
        if ip >= n - 2 {
            break;
        }
        // The last two matched positions go into the table too.
        ip -= 2;
        h = (input[ip] as u32) << 8 | input[ip + 1] as u32;
        h = h << 8 | input[ip + 2] as u32;
        table[slot(h)] = ip;
        ip += 1;
        h = h << 8 | input[ip + 2] as u32;
        table[slot(h)] = ip;
        ip += 1;
    }
    if out.len() + 3 > limit {
        return None;
    }
    while ip < n {
        lit += 1;
        out.push(input[ip]);
        ip += 1;
        if lit == MAX_LITERAL {
            close_run(&mut out, &mut lit);
        }
    }
    if lit > 0 {
        let at = out.len() - lit - 1;
        out[at] = (lit - 1) as u8;
    } else {
        out.pop();
    }
    Some(out)
}

/// Ends a full literal run and reserves the next run's control byte.
fn close_run(out: &mut Vec<u8>, lit: &mut usize) {
    let at = out.len() - *lit - 1;
    out[at] = (*lit - 1) as u8;
    *lit = 0;
    out.push(0);
}

/// How many bytes at `ip` repeat those at `r` (at least 3, known equal),
/// extended as Redis's compressor does: sixteen probes without a bound
/// when more than sixteen may follow, then up to `max_len`; the result
/// can pass `max_len` by a little, as Redis's does.
fn match_len(input: &[u8], r: usize, ip: usize, max_len: usize) -> usize {
    let mut len = 2;
    if max_len > 16 {
        for _ in 0..16 {
            len += 1;
            if input[r + len] != input[ip + len] {
                return len;
            }
        }
    }
    loop {
        len += 1;
        if !(len < max_len && input[r + len] == input[ip + len]) {
            return len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_corruption() {
        let inputs: [Vec<u8>; 4] = [
            b"abcdefghij".repeat(20),
            vec![b'a'; 64],
            (0..20000u32).map(|i| (i % 251) as u8 ^ (i / 97) as u8).collect(),
            b"line 00001: lorem ipsum dolor sit amet\n".repeat(300),
        ];
        for data in &inputs {
            let c = compress(data, data.len() - 4).expect("compressible");
            assert_eq!(decompress(&c, data.len()).as_deref(), Some(&data[..]));
            assert_eq!(decompress(&c, data.len() - 1), None);
            assert_eq!(decompress(&c, data.len() + 1), None);
            for cut in [1, c.len() / 2, c.len() - 1] {
                let _ = decompress(&c[..cut], data.len());
            }
        }
        // A reference before the start of the output.
        assert_eq!(decompress(&[0x20, 0x00], 3), None);
        assert_eq!(compress(&(0..=255u8).collect::<Vec<_>>(), 252), None);
    }

    #[test]
    fn same_bytes_as_redis() {
        // 'a' x 64 and "abcdefghij" x 20, as in Redis 7.0.15's DUMP.
        assert_eq!(compress(&[b'a'; 64], 60).unwrap(), [0x01, b'a', b'a', 0xe0, 0x33, 0x00, 0x01, b'a', b'a']);
        let c = compress(&b"abcdefghij".repeat(20), 196).unwrap();
        let mut want = vec![0x0a];
        want.extend_from_slice(b"abcdefghija");
        want.extend_from_slice(&[0xe0, 0xb2, 0x09, 0x01, b'i', b'j']);
        assert_eq!(c, want);
    }
}
