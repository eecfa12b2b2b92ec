//! HyperLogLog sketches kept in ordinary string values, byte-compatible with Redis 7.0.
//!
//! A sketch is a string, so it travels through GET/SET/DUMP unchanged and a value written
//! by Redis can be read here and the other way round. Every value starts with a 16-byte
//! header:
//!
//! | bytes  | meaning                                                                 |
//! |--------|-------------------------------------------------------------------------|
//! | 0..4   | the magic `HYLL`                                                        |
//! | 4      | encoding: 0 = dense, 1 = sparse (anything else is not a sketch)         |
//! | 5..8   | unused; kept as found                                                   |
//! | 8..16  | last computed cardinality, little endian; the top bit of byte 15 set    |
//! |        | means "stale, recompute" (the cached number is then ignored)           |
//!
//! There are 2^14 = 16384 registers. Hashing an element with MurmurHash64A (seed
//! `0xadc83b19`) gives 64 bits: the low 14 choose the register, and the register is raised
//! to the 1-based position of the lowest set bit among the remaining 50 (a sentinel bit
//! above them caps it at 51).
//!
//! **Dense** bodies hold every register in 6 bits, packed from the least significant bit of
//! each byte upwards, so register `i` starts at bit `6 * i` of the 12288-byte body. A dense
//! value is exactly 16 + 12288 bytes long.
//!
//! **Sparse** bodies are a run-length code read left to right, each opcode covering the
//! next registers in order; together they must cover all 16384 registers exactly:
//!
//! * `00nnnnnn`: a run of `n + 1` (1..=64) zero registers (ZERO);
//! * `01nnnnnn nnnnnnnn`: a run of `n + 1` (1..=16384) zero registers, 14-bit length with
//!   the high bits in the first byte (XZERO);
//! * `1vvvvvnn`: `n + 1` (1..=4) registers all holding `v + 1` (1..=32) (VAL).
//!
//! New keys start sparse (a single XZERO). A register that would need more than 32, or an
//! update that would make the value longer than `hll-sparse-max-bytes`, turns the value
//! dense for good. Updates edit the sparse code in place the way Redis does (split the run
//! that holds the register, then fuse neighbouring VAL runs of equal value), so the same
//! additions give the same bytes as Redis.
//!
//! The estimate follows Redis 7.0: a histogram of register values fed to Ertl's improved
//! raw estimator ("New cardinality estimation algorithms for HyperLogLog sketches",
//! arXiv:1702.01284), evaluated in the same order so the integer result is identical.
//!
//! Error mapping for callers: a value that fails [`is_valid`] gets [`WRONGTYPE_ERR`]; an
//! [`Invalid`] from the other functions (a sparse body that does not decode to exactly
//! 16384 registers) gets [`INVALIDOBJ_ERR`].

use std::fmt;

/// Reply for a string that does not even look like a sketch (Redis sends it for PFADD,
/// PFCOUNT, PFMERGE and PFDEBUG alike).
pub const WRONGTYPE_ERR: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
/// Reply for a sketch whose sparse body is corrupt.
pub const INVALIDOBJ_ERR: &str = "INVALIDOBJ Corrupted HLL object detected";
/// Redis's default for `hll-sparse-max-bytes`.
pub const DEFAULT_SPARSE_MAX_BYTES: usize = 3000;

/// Number of bits of the hash that select a register.
const P: u32 = 14;
/// Number of registers.
pub const REGISTERS: usize = 1 << P;
/// Hash bits left for the run of zeros once the register index is taken.
const Q: u32 = 64 - P;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 16;
/// Exact length of a dense value: header plus 16384 six-bit registers.
pub const DENSE_LEN: usize = HEADER_LEN + REGISTERS * 6 / 8;

const MAGIC: &[u8; 4] = b"HYLL";
const ENCODING_BYTE: usize = 4;
const CACHE: std::ops::Range<usize> = 8..16;
/// Top bit of the last cache byte: set while the cached cardinality is out of date.
const STALE_BIT: u8 = 0x80;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const HASH_SEED: u64 = 0xadc8_3b19;

/// The largest register value a VAL opcode can hold.
const SPARSE_VAL_MAX: u8 = 32;
/// The longest run a VAL opcode can hold.
const SPARSE_VAL_RUN_MAX: usize = 4;
/// The longest run a one-byte ZERO opcode can hold.
const SPARSE_ZERO_RUN_MAX: usize = 64;
/// The longest run an XZERO opcode can hold.
const SPARSE_XZERO_RUN_MAX: usize = 16384;
/// Redis's `HLL_ALPHA_INF`, 1 / (2 ln 2) (the same double as its 21-digit literal).
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The value is a string that is not a usable HyperLogLog.
#[derive(Debug)]
pub struct Invalid;

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("corrupted HyperLogLog value")
    }
}

impl std::error::Error for Invalid {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Dense,
    Sparse,
}

/// Header checks Redis makes before any HLL command touches a value: long enough for a
/// header, the magic, a known encoding, and the exact length when dense. A sparse body is
/// only checked when it is read (see [`validate`]).
pub fn is_valid(v: &[u8]) -> bool {
    encoding(v).is_ok()
}

/// Full check: the header as in [`is_valid`], and for a sparse value that its opcodes are
/// complete and cover exactly 16384 registers.
pub fn validate(v: &[u8]) -> Result<(), Invalid> {
    match encoding(v)? {
        Encoding::Dense => Ok(()),
        Encoding::Sparse => walk_sparse(body(v), |_, _| ()),
    }
}

/// True for a value with a valid header and the sparse encoding.
pub fn is_sparse(v: &[u8]) -> bool {
    matches!(encoding(v), Ok(Encoding::Sparse))
}

/// PFDEBUG ENCODING's status reply: `"dense"` or `"sparse"`.
pub fn encoding_name(v: &[u8]) -> Result<&'static str, Invalid> {
    Ok(match encoding(v)? {
        Encoding::Dense => "dense",
        Encoding::Sparse => "sparse",
    })
}

/// The value PFADD stores for a key it creates: sparse, every register zero, and the cache
/// already marked stale (PFADD always counts a creation as a change).
pub fn new() -> Vec<u8> {
    let mut v = empty_sparse();
    mark_stale(&mut v);
    v
}

/// PFADD of one element. Returns whether a register grew (PFADD replies 1 if any element,
/// or the creation of the key, changed something). May turn the value dense.
///
/// A corrupt sparse body is refused before anything is edited. (Redis 7.0 only scans as
/// far as the register it needs, so it may still edit such a value, or edit it and then
/// fail on a later element; no valid value behaves differently.)
pub fn add(v: &mut Vec<u8>, element: &[u8], sparse_max_bytes: usize) -> Result<bool, Invalid> {
    // Check the whole body first so a corrupt value is refused before it is edited.
    validate(v)?;
    let (index, rank) = register_and_rank(element);
    let changed = raise(v, index, rank, sparse_max_bytes)?;
    if changed {
        mark_stale(v);
    }
    Ok(changed)
}

/// PFCOUNT of a single key: the cached cardinality when it is current, otherwise a fresh
/// estimate that is written into the cache. The flag is true when the bytes changed (the
/// cache was written), which Redis treats as a modification of the key.
///
/// The number is the 64-bit pattern Redis keeps; it replies with it as a signed integer, so
/// callers should send `n as i64` (only a hand-made dense value with huge registers gives a
/// number with the top bit set).
/// The count cached in a value, when it is valid: what PFCOUNT answers
/// without writing (and so without touching the key, as in Redis).
pub fn cached_count(v: &[u8]) -> Result<Option<u64>, Invalid> {
    encoding(v)?;
    Ok(cached_cardinality(v))
}

pub fn count(v: &mut [u8]) -> Result<(u64, bool), Invalid> {
    let enc = encoding(v)?;
    if let Some(card) = cached_cardinality(v) {
        return Ok((card, false));
    }
    let histogram = match enc {
        Encoding::Dense => dense_histogram(body(v)),
        Encoding::Sparse => sparse_histogram(body(v))?,
    };
    let card = estimate(&histogram);
    v[CACHE].copy_from_slice(&card.to_le_bytes());
    Ok((card, true))
}

/// PFCOUNT of several keys: the estimate for the register-wise maximum of `values` (keys
/// that do not exist are simply left out). Nothing is cached, and cached numbers in the
/// inputs are not used.
///
/// Redis checks the keys one at a time in argument order, each first for
/// [`WRONGTYPE_ERR`] and then for [`INVALIDOBJ_ERR`]; to report the same first error, call
/// [`is_valid`] and then [`validate`] on each key in order before calling this.
pub fn count_union(values: &[&[u8]]) -> Result<u64, Invalid> {
    let mut max = [0u8; REGISTERS];
    for v in values {
        fold_max(&mut max, v)?;
    }
    Ok(estimate(&raw_histogram(&max)))
}

/// PFMERGE: the new value of the destination. `dest` is its current value when the key
/// exists (it takes part in the union, as in Redis); `sources` are the other existing keys.
///
/// As in Redis 7.0 the result starts from the destination (or a fresh sparse value), turns
/// dense at once if any input is dense, and otherwise receives the merged registers one by
/// one in register order through the sparse update, so it stays sparse unless a register
/// exceeds 32 or the value outgrows `sparse_max_bytes`. The cache is always marked stale.
/// Errors are checked per key as for [`count_union`], the destination first.
pub fn merge(dest: Option<&[u8]>, sources: &[&[u8]], sparse_max_bytes: usize) -> Result<Vec<u8>, Invalid> {
    let mut max = [0u8; REGISTERS];
    let mut any_dense = false;
    for v in dest.into_iter().chain(sources.iter().copied()) {
        any_dense |= encoding(v)? == Encoding::Dense;
        fold_max(&mut max, v)?;
    }
    let mut out = dest.map_or_else(empty_sparse, <[u8]>::to_vec);
    if any_dense {
        to_dense(&mut out)?;
    }
    for (index, &rank) in max.iter().enumerate() {
        if rank != 0 {
            raise(&mut out, index, rank, sparse_max_bytes)?;
        }
    }
    mark_stale(&mut out);
    Ok(out)
}

/// Converts a sparse value to dense in place (PFDEBUG TODENSE, and PFDEBUG GETREG first
/// does the same to the stored key). The header, cache included, is carried over. Returns
/// whether a conversion happened.
pub fn to_dense(v: &mut Vec<u8>) -> Result<bool, Invalid> {
    if encoding(v)? == Encoding::Dense {
        return Ok(false);
    }
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..HEADER_LEN].copy_from_slice(&v[..HEADER_LEN]);
    dense[ENCODING_BYTE] = DENSE;
    let regs = &mut dense[HEADER_LEN..];
    walk_sparse(body(v), |first, op| {
        if let Op::Val(value, run) = op {
            for index in first..first + run {
                dense_set(regs, index, value);
            }
        }
    })?;
    *v = dense;
    Ok(true)
}

/// PFDEBUG GETREG: the 16384 register values. Redis converts a sparse key to dense before
/// answering; do that with [`to_dense`] on the stored value, this function only reads.
pub fn debug_getreg(v: &[u8]) -> Result<Vec<u8>, Invalid> {
    let mut regs = vec![0u8; REGISTERS];
    match encoding(v)? {
        Encoding::Dense => {
            for (index, reg) in regs.iter_mut().enumerate() {
                *reg = dense_get(body(v), index);
            }
        }
        Encoding::Sparse => walk_sparse(body(v), |first, op| {
            if let Op::Val(value, run) = op {
                regs[first..first + run].fill(value);
            }
        })?,
    }
    Ok(regs)
}

/// PFDEBUG DECODE: Redis's text for a sparse body, e.g. `Z:2778 v:1,1 z:12 v:2,3`
/// (`z` ZERO, `Z` XZERO, `v:value,run` VAL). Like Redis it prints whatever opcodes are
/// there without checking that they cover 16384 registers, and an XZERO cut off by the end
/// of the value reads its missing second byte as 0 (Redis reads the string's terminator).
/// `Err` when the value is not a sparse sketch: reply `ERR HLL encoding is not sparse`
/// after the usual [`is_valid`] check.
pub fn debug_decode(v: &[u8]) -> Result<String, Invalid> {
    if encoding(v)? != Encoding::Sparse {
        return Err(Invalid);
    }
    let body = body(v);
    let mut words = Vec::new();
    let mut at = 0;
    while let Some(&first) = body.get(at) {
        let op = Op::decode(first, body.get(at + 1).copied().unwrap_or(0));
        words.push(match op {
            Op::Zero(run) => format!("z:{run}"),
            Op::XZero(run) => format!("Z:{run}"),
            Op::Val(value, run) => format!("v:{value},{run}"),
        });
        at += op.width();
    }
    Ok(words.join(" "))
}

/// PFSELFTEST: checks the 6-bit register packing and that estimates stay within a few
/// standard errors of the true count while dense and sparse copies agree. Deterministic.
pub fn selftest() -> Result<(), String> {
    selftest_registers()?;
    selftest_estimates()
}

// ---------------------------------------------------------------------------------------
// Header

fn encoding(v: &[u8]) -> Result<Encoding, Invalid> {
    if v.len() < HEADER_LEN || &v[..4] != MAGIC {
        return Err(Invalid);
    }
    match v[ENCODING_BYTE] {
        DENSE if v.len() == DENSE_LEN => Ok(Encoding::Dense),
        SPARSE => Ok(Encoding::Sparse),
        _ => Err(Invalid),
    }
}

fn body(v: &[u8]) -> &[u8] {
    &v[HEADER_LEN..]
}

fn cached_cardinality(v: &[u8]) -> Option<u64> {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&v[CACHE]);
    (bytes[7] & STALE_BIT == 0).then(|| u64::from_le_bytes(bytes))
}

fn mark_stale(v: &mut [u8]) {
    v[CACHE.end - 1] |= STALE_BIT;
}

/// What Redis's createHLLObject builds: sparse, cache 0 and current, all registers zero.
fn empty_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + 2);
    v.extend_from_slice(MAGIC);
    v.push(SPARSE);
    v.resize(HEADER_LEN, 0);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(SPARSE_XZERO_RUN_MAX);
        Op::XZero(run).push_to(&mut v);
        left -= run;
    }
    v
}

// ---------------------------------------------------------------------------------------
// Hashing

/// MurmurHash2, 64-bit variant A, reading 8-byte words little endian whatever the host.
fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut k = little_endian(word);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        h ^= little_endian(tail);
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Up to 8 bytes as a little-endian integer (missing high bytes are zero).
fn little_endian(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// The register an element lands in, and the value it offers that register.
fn register_and_rank(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, HASH_SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    // The sentinel bit keeps the count finite (at most Q + 1) when the Q bits are all zero.
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ---------------------------------------------------------------------------------------
// Dense registers

fn dense_get(regs: &[u8], index: usize) -> u8 {
    let bit = index * 6;
    let byte = bit / 8;
    // The last register sits in the low bits of a 16-bit window that would run one byte
    // past the end; that byte never contributes, so treat it as zero.
    let window = u16::from(regs[byte]) | u16::from(regs.get(byte + 1).copied().unwrap_or(0)) << 8;
    ((window >> (bit % 8)) & 0x3f) as u8
}

fn dense_set(regs: &mut [u8], index: usize, value: u8) {
    let bit = index * 6;
    let byte = bit / 8;
    let shift = bit % 8;
    let mask = 0x3fu16 << shift;
    let bits = u16::from(value & 0x3f) << shift;
    regs[byte] = (regs[byte] & !(mask as u8)) | bits as u8;
    if let Some(next) = regs.get_mut(byte + 1) {
        *next = (*next & !((mask >> 8) as u8)) | (bits >> 8) as u8;
    }
}

/// Raises register `index` to `rank` if it is lower; true when it changed.
fn dense_raise(regs: &mut [u8], index: usize, rank: u8) -> bool {
    if dense_get(regs, index) >= rank {
        return false;
    }
    dense_set(regs, index, rank);
    true
}

fn dense_histogram(regs: &[u8]) -> [u32; 64] {
    let mut histogram = [0u32; 64];
    // Every 3 bytes hold exactly 4 registers.
    for chunk in regs.chunks_exact(3) {
        let (a, b, c) = (chunk[0], chunk[1], chunk[2]);
        for reg in [a & 0x3f, (a >> 6) | ((b & 0x0f) << 2), (b >> 4) | ((c & 0x03) << 4), c >> 2] {
            histogram[usize::from(reg)] += 1;
        }
    }
    histogram
}

fn raw_histogram(regs: &[u8; REGISTERS]) -> [u32; 64] {
    let mut histogram = [0u32; 64];
    for &reg in regs {
        histogram[usize::from(reg & 0x3f)] += 1;
    }
    histogram
}

// ---------------------------------------------------------------------------------------
// Sparse opcodes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// One byte: 1..=64 zero registers.
    Zero(usize),
    /// Two bytes: 1..=16384 zero registers.
    XZero(usize),
    /// One byte: (value 1..=32, run 1..=4).
    Val(u8, usize),
}

impl Op {
    /// Decodes an opcode from its first byte and the byte after it (used only by XZERO).
    fn decode(first: u8, second: u8) -> Op {
        match first >> 6 {
            0 => Op::Zero(usize::from(first & 0x3f) + 1),
            1 => Op::XZero((usize::from(first & 0x3f) << 8 | usize::from(second)) + 1),
            _ => Op::Val(((first >> 2) & 0x1f) + 1, usize::from(first & 0x03) + 1),
        }
    }

    /// The opcode at `body[at]`, or `None` past the end or for an XZERO missing its second
    /// byte.
    fn read(body: &[u8], at: usize) -> Option<Op> {
        let first = *body.get(at)?;
        let op = Op::decode(first, body.get(at + 1).copied().unwrap_or(0));
        (at + op.width() <= body.len()).then_some(op)
    }

    fn span(self) -> usize {
        match self {
            Op::Zero(run) | Op::XZero(run) | Op::Val(_, run) => run,
        }
    }

    fn width(self) -> usize {
        match self {
            Op::XZero(_) => 2,
            Op::Zero(_) | Op::Val(..) => 1,
        }
    }

    /// A zero run in the opcode Redis picks for that length.
    fn zeros(run: usize) -> Op {
        if run > SPARSE_ZERO_RUN_MAX { Op::XZero(run) } else { Op::Zero(run) }
    }

    /// Appends the encoding; callers keep values and runs in the opcode's range.
    fn push_to(self, out: &mut Vec<u8>) {
        match self {
            Op::Zero(run) => out.push((run - 1) as u8),
            Op::XZero(run) => {
                let n = run - 1;
                out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
            }
            Op::Val(value, run) => out.push(val_byte(value, run)),
        }
    }
}

fn val_byte(value: u8, run: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (run - 1) as u8
}

/// Walks a sparse body calling `visit(first_register, op)` for every opcode; succeeds only
/// if the opcodes are complete and cover exactly [`REGISTERS`] registers. `visit` only sees
/// runs that lie wholly inside the register range, so it may index by them.
fn walk_sparse(body: &[u8], mut visit: impl FnMut(usize, Op)) -> Result<(), Invalid> {
    let mut at = 0;
    let mut first = 0;
    while at < body.len() {
        let op = Op::read(body, at).ok_or(Invalid)?;
        let end = first + op.span();
        if end > REGISTERS {
            return Err(Invalid);
        }
        visit(first, op);
        first = end;
        at += op.width();
    }
    if first == REGISTERS { Ok(()) } else { Err(Invalid) }
}

fn sparse_histogram(body: &[u8]) -> Result<[u32; 64], Invalid> {
    let mut histogram = [0u32; 64];
    walk_sparse(body, |_, op| match op {
        Op::Zero(run) | Op::XZero(run) => histogram[0] += run as u32,
        Op::Val(value, run) => histogram[usize::from(value)] += run as u32,
    })?;
    Ok(histogram)
}

/// The opcode covering one register, with where it is in the body.
struct Located {
    /// Offset of the opcode before it, if any (the fusing pass starts there).
    prev: Option<usize>,
    /// Offset of the opcode itself.
    at: usize,
    /// First register it covers.
    first: usize,
    op: Op,
}

fn locate(body: &[u8], index: usize) -> Option<Located> {
    let (mut at, mut first, mut prev) = (0, 0, None);
    while at < body.len() {
        let op = Op::read(body, at)?;
        if index < first + op.span() {
            return Some(Located { prev, at, first, op });
        }
        prev = Some(at);
        first += op.span();
        at += op.width();
    }
    None
}

/// The opcodes replacing `op` once register `index` inside it holds `rank`: the part of
/// the run before it, a single-register VAL, and the part after it (at most 5 bytes).
fn split_run(op: Op, first: usize, index: usize, rank: u8) -> Vec<u8> {
    let before = index - first;
    let after = first + op.span() - 1 - index;
    let piece = |run| match op {
        Op::Val(value, _) => Op::Val(value, run),
        Op::Zero(_) | Op::XZero(_) => Op::zeros(run),
    };
    let mut seq = Vec::with_capacity(5);
    if before > 0 {
        piece(before).push_to(&mut seq);
    }
    Op::Val(rank, 1).push_to(&mut seq);
    if after > 0 {
        piece(after).push_to(&mut seq);
    }
    seq
}

/// Redis's clean-up after a sparse edit: starting at `start` (body offset) it looks at no
/// more than five opcodes and fuses a VAL with the VAL right after it when both hold the
/// same value and the runs fit in one opcode, retrying in place after each fusion. Doing
/// exactly this much (and no more) is what keeps the bytes identical to Redis's.
fn fuse_vals(v: &mut Vec<u8>, start: usize) {
    let mut at = HEADER_LEN + start;
    for _ in 0..5 {
        let Some(&byte) = v.get(at) else { break };
        match Op::decode(byte, 0) {
            Op::XZero(_) => at += 2,
            Op::Zero(_) => at += 1,
            Op::Val(value, run) => {
                if let Some(Op::Val(next_value, next_run)) = v.get(at + 1).map(|&b| Op::decode(b, 0))
                    && next_value == value
                    && run + next_run <= SPARSE_VAL_RUN_MAX
                {
                    v[at + 1] = val_byte(value, run + next_run);
                    v.remove(at);
                } else {
                    at += 1;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Updates

/// Raises register `index` to `rank` in whichever encoding `v` has, promoting a sparse
/// value to dense where Redis does. Does not touch the cache flag.
fn raise(v: &mut Vec<u8>, index: usize, rank: u8, sparse_max_bytes: usize) -> Result<bool, Invalid> {
    match encoding(v)? {
        Encoding::Dense => Ok(dense_raise(&mut v[HEADER_LEN..], index, rank)),
        Encoding::Sparse if rank > SPARSE_VAL_MAX => promote_and_raise(v, index, rank),
        Encoding::Sparse => sparse_raise(v, index, rank, sparse_max_bytes),
    }
}

fn promote_and_raise(v: &mut Vec<u8>, index: usize, rank: u8) -> Result<bool, Invalid> {
    to_dense(v)?;
    // A promotion only happens when the register must grow, so this always reports true.
    Ok(dense_raise(&mut v[HEADER_LEN..], index, rank))
}

fn sparse_raise(v: &mut Vec<u8>, index: usize, rank: u8, sparse_max_bytes: usize) -> Result<bool, Invalid> {
    let found = locate(body(v), index).ok_or(Invalid)?;
    let at = HEADER_LEN + found.at;
    match found.op {
        Op::Val(current, _) if current >= rank => return Ok(false),
        // A run of one is rewritten in place.
        Op::Val(_, 1) | Op::Zero(1) => v[at] = val_byte(rank, 1),
        op => {
            let seq = split_run(op, found.first, index, rank);
            let width = op.width();
            if seq.len() > width && v.len() + seq.len() - width > sparse_max_bytes {
                return promote_and_raise(v, index, rank);
            }
            v.splice(at..at + width, seq);
        }
    }
    fuse_vals(v, found.prev.unwrap_or(0));
    Ok(true)
}

/// Folds the registers of `v` into `max` (register-wise maximum).
fn fold_max(max: &mut [u8; REGISTERS], v: &[u8]) -> Result<(), Invalid> {
    match encoding(v)? {
        Encoding::Dense => {
            for (index, reg) in max.iter_mut().enumerate() {
                *reg = (*reg).max(dense_get(body(v), index));
            }
            Ok(())
        }
        Encoding::Sparse => walk_sparse(body(v), |first, op| {
            if let Op::Val(value, run) = op {
                for reg in &mut max[first..first + run] {
                    *reg = (*reg).max(value);
                }
            }
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Estimation (Ertl's improved raw estimator, evaluated exactly as Redis 7.0 does)

fn estimate(histogram: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let q = Q as usize;
    // Registers above Q + 1 cannot come from hashing; like Redis, they are counted in the
    // histogram but take no part in the estimate.
    let mut z = m * tau((m - f64::from(histogram[q + 1])) / m);
    for &n in histogram[1..=q].iter().rev() {
        z += f64::from(n);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    round_like_redis(ALPHA_INF * m * m / z)
}

/// Redis rounds with llroundl (half away from zero) and stores the result as unsigned. On
/// the x86-64 builds this mirrors, an estimate that does not fit a signed 64-bit integer
/// (only possible when z is 0, giving infinity) becomes the bit pattern 1 << 63.
fn round_like_redis(e: f64) -> u64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    let r = e.round();
    if r.is_finite() && (0.0..LIMIT).contains(&r) { r as u64 } else { 1 << 63 }
}

/// Ertl's sigma: x + sum over k >= 1 of x^(2^k) * 2^(k-1), summed until it stops changing.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut weight = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * weight;
        weight += weight;
        if z == before {
            return z;
        }
    }
}

/// Ertl's tau: (1 - x - sum over k >= 1 of (1 - x^(2^-k))^2 * 2^-k) / 3, summed until it
/// stops changing.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut weight = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        weight *= 0.5;
        let gap = 1.0 - x;
        z -= gap * gap * weight;
        if z == before {
            return z / 3.0;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Self test

/// A small deterministic generator (xorshift64*) so the self test needs no randomness.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Fills the packed registers with random 6-bit values and reads every one back, which
/// also proves that writing one register leaves its neighbours alone.
fn selftest_registers() -> Result<(), String> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut packed = vec![0u8; DENSE_LEN - HEADER_LEN];
    let mut plain = [0u8; REGISTERS];
    for _ in 0..16 {
        for (index, reg) in plain.iter_mut().enumerate() {
            *reg = (rng.next() & 0x3f) as u8;
            dense_set(&mut packed, index, *reg);
        }
        for (index, &want) in plain.iter().enumerate() {
            let got = dense_get(&packed, index);
            if got != want {
                return Err(format!("TESTFAILED Register {index} should be {want} but is {got}"));
            }
        }
    }
    Ok(())
}

/// Adds distinct elements to a dense and a sparse sketch side by side; at every power of
/// ten checks that the small ones are still sparse, that both estimate the same, and that
/// the error is within six standard errors.
fn selftest_estimates() -> Result<(), String> {
    let mut dense = empty_sparse();
    to_dense(&mut dense).map_err(|e| e.to_string())?;
    let mut sparse = new();
    let relative_error = 1.04 / (REGISTERS as f64).sqrt();
    let seed = 0x5eed_f00d_u64;
    let mut checkpoint = 1u64;
    for j in 1..=1_000_000u64 {
        let element = (j ^ seed).to_le_bytes();
        let (index, rank) = register_and_rank(&element);
        dense_raise(&mut dense[HEADER_LEN..], index, rank);
        add(&mut sparse, &element, DEFAULT_SPARSE_MAX_BYTES).map_err(|e| e.to_string())?;
        if j != checkpoint {
            continue;
        }
        checkpoint *= 10;
        if j < DEFAULT_SPARSE_MAX_BYTES as u64 / 2 && !is_sparse(&sparse) {
            return Err("TESTFAILED sparse encoding not used".to_string());
        }
        let dense_card = estimate(&dense_histogram(body(&dense)));
        let sparse_card = count(&mut sparse).map_err(|e| e.to_string())?.0;
        if dense_card != sparse_card {
            return Err("TESTFAILED dense/sparse disagree".to_string());
        }
        let max_error = if j == 10 { 1 } else { (relative_error * 6.0 * j as f64).ceil() as u64 };
        let error = dense_card.abs_diff(j);
        if error > max_error {
            return Err(format!("TESTFAILED Too big error. card:{j} abserr:{error}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Expected bytes and numbers below were produced by a real redis-server 7.0.15 (PFADD,
    //! PFCOUNT, PFMERGE, PFDEBUG, then GET of the raw value). Large values are compared by
    //! length and 64-bit FNV-1a of their bytes.

    use super::*;

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex")).collect()
    }

    /// PFADD of `elements` into `v`, as Redis does for one command: true if anything changed.
    fn pfadd<E: AsRef<[u8]>>(v: &mut Vec<u8>, elements: impl IntoIterator<Item = E>, max: usize) -> bool {
        let mut changed = false;
        for e in elements {
            changed |= add(v, e.as_ref(), max).expect("valid sketch");
        }
        changed
    }

    fn sketch_of<E: AsRef<[u8]>>(elements: impl IntoIterator<Item = E>) -> Vec<u8> {
        let mut v = new();
        pfadd(&mut v, elements, DEFAULT_SPARSE_MAX_BYTES);
        v
    }

    fn card(v: &mut [u8]) -> u64 {
        count(v).expect("valid sketch").0
    }

    fn assert_digest(v: &[u8], len: usize, digest: u64) {
        assert_eq!((v.len(), fnv1a(v)), (len, digest), "length / FNV-1a differ from redis");
    }

    /// The key the Redis session built: PFADD a b c, PFCOUNT (cache 3), PFADD "" (stale).
    fn abc_and_empty() -> Vec<u8> {
        let mut v = sketch_of(["a", "b", "c"]);
        card(&mut v);
        pfadd(&mut v, [""], DEFAULT_SPARSE_MAX_BYTES);
        v
    }

    fn two_hundred() -> Vec<u8> {
        sketch_of((0..200).map(|i| format!("elem:{i}")))
    }

    fn twenty_thousand() -> Vec<u8> {
        sketch_of((0..20_000).map(|i| format!("e{i}")))
    }

    fn one_to_ten() -> Vec<u8> {
        sketch_of((1..=10).map(|i| i.to_string()))
    }

    /// Elements found by inverting MurmurHash64A so that they hit a chosen register with a
    /// chosen rank.
    const RANK_41_AT_5: [u8; 8] = [0x7c, 0xab, 0x8e, 0xe0, 0x21, 0x19, 0xee, 0x51];
    const RANK_33_AT_16383: [u8; 8] = [0x34, 0x81, 0x74, 0xb2, 0x3c, 0xd8, 0x11, 0x4b];
    const RANK_32_AT_100: [u8; 8] = [0x38, 0x32, 0x62, 0x62, 0xe7, 0xe1, 0xf9, 0x31];
    const RANK_51_AT_7: [u8; 8] = [0x3c, 0xcd, 0x32, 0xac, 0x70, 0xa8, 0xd6, 0x12];

    #[test]
    fn hash_picks_register_and_rank() {
        assert_eq!(register_and_rank(&RANK_41_AT_5), (5, 41));
        assert_eq!(register_and_rank(&RANK_33_AT_16383), (16383, 33));
        assert_eq!(register_and_rank(&RANK_32_AT_100), (100, 32));
        // All 50 bits zero: the sentinel caps the rank at 51.
        assert_eq!(register_and_rank(&RANK_51_AT_7), (7, 51));
    }

    #[test]
    fn new_matches_pfadd_without_elements() {
        assert_eq!(new(), unhex("48594c4c0100000000000000000000807fff"));
        let mut v = new();
        assert_eq!(count(&mut v).expect("valid"), (0, true));
        assert_eq!(v, unhex("48594c4c0100000000000000000000007fff"));
        assert_eq!(count(&mut v).expect("valid"), (0, false));
    }

    #[test]
    fn small_set_bytes_decode_and_cache() {
        let mut v = new();
        assert!(pfadd(&mut v, ["a", "b", "c"], DEFAULT_SPARSE_MAX_BYTES));
        assert_eq!(v, unhex("48594c4c01000000000000000000008060f38050b1844bfb80425a"));
        assert_eq!(debug_decode(&v).expect("sparse"), "Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603");
        assert_eq!(count(&mut v).expect("valid"), (3, true));
        assert_eq!(v, unhex("48594c4c01000000030000000000000060f38050b1844bfb80425a"));
        assert_eq!(count(&mut v).expect("valid"), (3, false));
        // Adding the same elements changes nothing, so the cache stays current.
        assert!(!pfadd(&mut v, ["a", "b", "c"], DEFAULT_SPARSE_MAX_BYTES));
        assert_eq!(v[15], 0);
        // The empty string is an element like any other.
        assert!(pfadd(&mut v, [""], DEFAULT_SPARSE_MAX_BYTES));
        assert_eq!(v, unhex("48594c4c01000000030000000000008057318449c08050b1844bfb80425a"));
        assert_eq!(v, abc_and_empty());
    }

    #[test]
    fn redis_suite_cardinalities() {
        let mut v = sketch_of((1..=5).map(|i| i.to_string()));
        assert_eq!(card(&mut v), 5);
        pfadd(&mut v, ["6", "7", "8", "8", "9", "10"], DEFAULT_SPARSE_MAX_BYTES);
        assert_eq!(card(&mut v), 10);
        assert_eq!(v, unhex("48594c4c010000000a0000000000000041ee844823805351804ce0804092804c3f8042d78042128c40b88015844322"));
    }

    #[test]
    fn two_hundred_elements_stay_sparse() {
        let mut v = two_hundred();
        assert!(is_sparse(&v));
        assert_digest(&v, 494, 0xd6d8_c45a_6101_6bbd);
        let text = debug_decode(&v).expect("sparse");
        assert!(text.starts_with("Z:672 v:1,1 z:4 v:1,2 z:24 v:3,1 Z:152 v:4,1 z:2 v:1,1 Z:283"));
        assert_digest(text.as_bytes(), 2186, 0x9c41_c667_57cf_8a29);
        assert_eq!(count(&mut v).expect("valid"), (200, true));
        assert_digest(&v, 494, 0x9276_6694_a1c7_e715);
    }

    #[test]
    fn twenty_thousand_elements_go_dense() {
        let mut v = twenty_thousand();
        assert_eq!(encoding_name(&v).expect("valid"), "dense");
        assert_digest(&v, DENSE_LEN, 0x075d_2639_6862_b2bf);
        assert_eq!(count(&mut v).expect("valid"), (19901, true));
        assert_digest(&v, DENSE_LEN, 0x5b77_6629_ffcd_d575);
    }

    #[test]
    fn register_above_32_promotes_to_dense() {
        let mut v = sketch_of([b"a".as_slice(), b"b", &RANK_41_AT_5]);
        assert!(!is_sparse(&v));
        assert_digest(&v, DENSE_LEN, 0xf4e9_db54_ef51_b3ab);
        assert_eq!(card(&mut v), 3);
        assert_eq!(debug_getreg(&v).expect("valid")[5], 41);

        // 32 still fits a VAL opcode.
        let v = sketch_of([b"a".as_slice(), &RANK_32_AT_100]);
        assert_eq!(v, unhex("48594c4c0100000000000000000000804063fc7141844e57"));
        assert_eq!(debug_decode(&v).expect("sparse"), "Z:100 v:32,1 Z:12610 v:2,1 Z:3672");
    }

    #[test]
    fn sparse_size_limit_promotes_to_dense() {
        // (limit, index of the element that promotes, last sparse length, its digest,
        // digest of the dense result), adding `s0`, `s1`, ... one PFADD each.
        let cases = [
            (3000, 1681, 2999, 0xada0_63b2_02a7_1170, 0x400b_28b7_5af4_92be),
            (500, 195, 499, 0x0090_a30a_2c15_19c2, 0xdc27_1d1f_121f_8a33),
        ];
        for (limit, promoting, last_len, last_digest, dense_digest) in cases {
            let mut v = new();
            for i in 0..promoting {
                add(&mut v, format!("s{i}").as_bytes(), limit).expect("valid");
                assert!(is_sparse(&v), "limit {limit}: dense too early at s{i}");
            }
            assert_digest(&v, last_len, last_digest);
            assert!(add(&mut v, format!("s{promoting}").as_bytes(), limit).expect("valid"));
            assert_digest(&v, DENSE_LEN, dense_digest);
        }
    }

    #[test]
    fn union_counts_match_redis() {
        let (d200, ten, abc) = (two_hundred(), one_to_ten(), abc_and_empty());
        assert_eq!(count_union(&[&d200, &ten, &abc]).expect("valid"), 214);
        let dense = twenty_thousand();
        let r41 = sketch_of([b"a".as_slice(), b"b", &RANK_41_AT_5]);
        assert_eq!(count_union(&[&d200, &dense, &r41]).expect("valid"), 20133);
        assert_eq!(count_union(&[]).expect("valid"), 0);
    }

    #[test]
    fn merges_match_redis() {
        let max = DEFAULT_SPARSE_MAX_BYTES;
        let (d200, ten, abc) = (two_hundred(), one_to_ten(), abc_and_empty());

        // All inputs sparse: the result stays sparse.
        let mut m1 = merge(None, &[&d200, &ten], max).expect("valid");
        assert_digest(&m1, 516, 0xd401_dcd3_7e54_f5f6);
        assert_eq!(card(&mut m1), 210);

        // A dense input makes the result dense.
        let mut m2 = merge(None, &[&d200, &twenty_thousand()], max).expect("valid");
        assert_digest(&m2, DENSE_LEN, 0xec08_1e3a_f35e_e95a);
        assert_eq!(card(&mut m2), 20127);

        // An existing destination is part of the union and is edited in place.
        let xy = sketch_of(["x", "y"]);
        let m3 = merge(Some(&xy), &[&abc, &d200], max).expect("valid");
        assert_digest(&m3, 507, 0x313f_d8a8_8dd8_4f11);

        // Sparse inputs whose union outgrows the limit: promoted during the merge.
        let big1 = sketch_of((0..900).map(|j| format!("p{j}")));
        let big2 = sketch_of((0..900).map(|j| format!("q{j}")));
        assert_digest(&big1, 1733, 0x6e21_b5dd_da7c_2080);
        assert_digest(&big2, 1738, 0x58be_83ae_c606_379f);
        let mut m4 = merge(None, &[&big1, &big2], max).expect("valid");
        assert_digest(&m4, DENSE_LEN, 0x50be_fcdf_1d8b_2292);
        assert_eq!(card(&mut m4), 1814);

        // No inputs at all: the value PFADD would create.
        assert_eq!(merge(None, &[], max).expect("valid"), new());

        let r32 = sketch_of([b"a".as_slice(), &RANK_32_AT_100]);
        let m6 = merge(None, &[&r32, &abc], max).expect("valid");
        assert_eq!(m6, unhex("48594c4c0100000000000000000000804063fc56cc8449c08050b1844bfb80425a"));
    }

    #[test]
    fn getreg_and_todense_match_redis() {
        let mut abc = abc_and_empty();
        let regs = debug_getreg(&abc).expect("valid");
        let nonzero: Vec<(usize, u8)> = regs.iter().enumerate().filter(|&(_, &r)| r != 0).map(|(i, &r)| (i, r)).collect();
        assert_eq!(nonzero, [(5938, 2), (8436, 1), (12711, 2), (15780, 1)]);
        assert!(to_dense(&mut abc).expect("valid"));
        assert!(!to_dense(&mut abc).expect("valid"));
        assert_digest(&abc, DENSE_LEN, 0xcf0d_a8c2_0043_4601);
        assert_eq!(debug_getreg(&abc).expect("valid"), regs);
        assert_eq!(debug_decode(&abc).map_err(|_| "not sparse"), Err("not sparse"));

        // Redis had counted this key before (cache 200, current); the header is carried over.
        let mut d200 = two_hundred();
        card(&mut d200);
        assert_eq!(fnv1a(&debug_getreg(&d200).expect("valid")), 0x9366_1620_ae8f_8559);
        to_dense(&mut d200).expect("valid");
        assert_digest(&d200, DENSE_LEN, 0xcaef_7fa2_8e1a_df03);
    }

    #[test]
    fn unused_header_bytes_are_kept() {
        let mut v = unhex("48594c4c010708090000000000000000");
        v.extend_from_slice(&[0x7f, 0xff]);
        assert!(add(&mut v, b"a", DEFAULT_SPARSE_MAX_BYTES).expect("valid"));
        assert_eq!(v, unhex("48594c4c01070809000000000000008071a6844e57"));
        to_dense(&mut v).expect("valid");
        assert_eq!(v[..HEADER_LEN], unhex("48594c4c000708090000000000000080"));
    }

    #[test]
    fn huge_registers_give_redis_overflow_value() {
        // Every register 63: z is 0 and Redis's rounding of infinity yields 1 << 63 (it
        // replies -9223372036854775808), which also leaves the cache flagged stale.
        let mut v = unhex("48594c4c000000000000000000000080");
        v.resize(DENSE_LEN, 0xff);
        assert_eq!(count(&mut v).expect("valid"), (1 << 63, true));
        assert_eq!(v[CACHE], [0, 0, 0, 0, 0, 0, 0, 0x80]);
        assert_eq!(count(&mut v).expect("valid"), (1 << 63, true));
    }

    #[test]
    fn header_checks_match_redis() {
        let abc = sketch_of(["a", "b", "c"]);
        assert!(is_valid(&abc));
        let mut broken_magic = abc.clone();
        broken_magic[..4].copy_from_slice(b"0123");
        assert!(!is_valid(&broken_magic));
        let mut unknown_encoding = abc.clone();
        unknown_encoding[4] = b'x';
        assert!(!is_valid(&unknown_encoding));
        // Marked dense but sparse-sized.
        let mut short_dense = abc.clone();
        short_dense[4] = 0;
        assert!(!is_valid(&short_dense));
        let mut long_dense = twenty_thousand();
        long_dense.push(0);
        assert!(!is_valid(&long_dense));
        assert!(!is_valid(b"HYLL\x01\x00\x00"));
        assert!(!is_valid(b""));
        assert!(count(&mut broken_magic).is_err());
    }

    #[test]
    fn corrupt_sparse_bodies_are_detected() {
        // Redis suite: bytes appended after a PFADD (cache stale) make PFCOUNT fail.
        let mut tail = sketch_of(["a", "b", "c"]);
        tail.extend_from_slice(b"hello");
        assert!(is_valid(&tail));
        assert!(validate(&tail).is_err());
        assert!(count(&mut tail).is_err());
        assert!(count_union(&[&tail]).is_err());
        assert!(merge(None, &[&tail], DEFAULT_SPARSE_MAX_BYTES).is_err());
        assert!(add(&mut tail, b"zz", DEFAULT_SPARSE_MAX_BYTES).is_err());
        assert!(to_dense(&mut tail).is_err());
        assert!(debug_getreg(&tail).is_err());

        // With a current cache PFCOUNT answers from it without reading the body (Redis too).
        let mut cached = sketch_of(["a", "b", "c"]);
        count(&mut cached).expect("valid");
        cached.extend_from_slice(b"hello");
        assert_eq!(count(&mut cached).expect("cache is used"), (3, false));

        // An empty body covers no registers.
        let mut empty = unhex("48594c4c010000000000000000000000");
        assert_eq!(count(&mut empty).expect("cache is used"), (0, false));
        assert!(add(&mut empty, b"a", DEFAULT_SPARSE_MAX_BYTES).is_err());
        assert_eq!(debug_decode(&empty).expect("sparse"), "");

        // One register too many.
        let over = unhex("48594c4c0100000000000000000000807fff80");
        assert!(validate(&over).is_err());
        assert!(merge(Some(&over), &[], DEFAULT_SPARSE_MAX_BYTES).is_err());

        // A final XZERO missing its second byte: Redis reads its string terminator there, so
        // DECODE prints `Z:1` (and Redis would even count it); here the value is refused.
        let cut = unhex("48594c4c0100000000000000000000807eff3f3f3f3e40");
        assert_eq!(debug_decode(&cut).expect("sparse"), "Z:16128 z:64 z:64 z:64 z:63 Z:1");
        assert!(validate(&cut).is_err());
    }

    /// Runs every entry point on `v`; they may fail but must not panic, and whatever they
    /// accept must behave consistently.
    fn exercise(v: &[u8]) {
        let max = DEFAULT_SPARSE_MAX_BYTES;
        let _ = is_valid(v);
        let _ = is_sparse(v);
        let _ = encoding_name(v);
        let _ = debug_decode(v);
        let mut counted = v.to_vec();
        let _ = count(&mut counted);
        let _ = count_union(&[v, v]);
        if validate(v).is_err() {
            assert!(merge(Some(v), &[], max).is_err());
            assert!(debug_getreg(v).is_err());
            assert!(add(&mut v.to_vec(), b"x", max).is_err());
            return;
        }
        let regs = debug_getreg(v).expect("validated");
        let mut dense = v.to_vec();
        to_dense(&mut dense).expect("validated");
        assert_eq!(debug_getreg(&dense).expect("dense"), regs);
        let mut stale = v.to_vec();
        mark_stale(&mut stale);
        let (n, _) = count(&mut stale).expect("validated");
        mark_stale(&mut dense);
        assert_eq!(count(&mut dense).expect("dense").0, n);
        assert_eq!(count_union(&[v]).expect("validated"), n);
        let mut grown = v.to_vec();
        for e in ["x", "y", "zz"] {
            add(&mut grown, e.as_bytes(), max).expect("validated");
        }
        validate(&grown).expect("adds keep the value valid");
        validate(&merge(Some(v), &[&grown], max).expect("validated")).expect("merge result is valid");
    }

    #[test]
    fn mutated_values_never_panic() {
        let bases = [new(), sketch_of(["a", "b", "c"]), two_hundred(), sketch_of([b"a".as_slice(), &RANK_33_AT_16383])];
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        for base in &bases {
            exercise(base);
            for round in 0..400 {
                let mut v = base.clone();
                let at = (rng.next() % v.len() as u64) as usize;
                match round % 5 {
                    0 => v[at] = rng.next() as u8,
                    1 => v.truncate(at),
                    2 => v.extend((0..1 + rng.next() % 4).map(|_| rng.next() as u8)),
                    3 => v.insert(at.max(HEADER_LEN.min(v.len())), rng.next() as u8),
                    _ => {
                        v.remove(at);
                    }
                }
                exercise(&v);
            }
        }
    }

    #[test]
    fn selftest_passes() {
        assert_eq!(selftest(), Ok(()));
    }
}
