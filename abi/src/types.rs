//! The values that cross the boundary, each with its encoding.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::borrow::Borrow;

use crate::codec::{DecodeError, Reader, Writer};

/// A value with a wire form.
pub trait Wire<'a>: Sized {
    fn encode(&self, w: &mut Writer);
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError>;

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode(&mut w);
        w.buf
    }

    /// Decodes a whole buffer: trailing bytes are an error.
    fn from_bytes(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

impl<'a, T: Wire<'a>> Wire<'a> for Vec<T> {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.len() as u32);
        self.iter().for_each(|x| x.encode(w));
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let n = r.count(1)?;
        // `count` bounded n by the bytes left, so this cannot over-reserve.
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(r)?);
        }
        Ok(v)
    }
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $tag:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $variant = $tag),+ }

        impl $name {
            /// The value a tag byte names.
            pub fn from_tag(tag: u8) -> Result<Self, DecodeError> {
                match tag {
                    $($tag => Ok($name::$variant),)+
                    t => Err(DecodeError::BadTag(t)),
                }
            }
        }

        impl<'a> Wire<'a> for $name {
            fn encode(&self, w: &mut Writer) {
                w.u8(*self as u8);
            }
            fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                $name::from_tag(r.u8()?)
            }
        }
    };
}

wire_enum!(
    /// The type of a key's value.
    KeyType { String = 0, List = 1, Set = 2, ZSet = 3, Hash = 4, Stream = 5 }
);

wire_enum!(
    /// What kind of command is asking.
    CommandClass { Read = 0, Write = 1, Admin = 2 }
);

wire_enum!(
    /// Which limit a quota question is about.
    Resource {
        /// None yet: usage is above the warning threshold.
        Threshold = 0,
        Memory = 1,
        Keys = 2,
        Ops = 3,
    }
);

/// A key the host sampled as a possible eviction victim. The key borrows
/// the input buffer when decoded, so a decision allocates nothing per key.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    pub key: Cow<'a, [u8]>,
    pub db: u32,
    pub key_type: KeyType,
    /// Bytes the key and its value hold.
    pub size: u64,
    pub idle_ms: u64,
    /// Redis's logarithmic access counter (0-255).
    pub lfu: u8,
    /// Milliseconds until it expires; `None` without a TTL.
    pub ttl_ms: Option<u64>,
}

impl<'a> Wire<'a> for Candidate<'a> {
    /// Field by field, straight from registers: copying a just-built array
    /// (or two adjacent fields at once) stalled on store forwarding, about
    /// 6 ns a candidate on the host. `decode` reads the fixed part as one block.
    #[inline]
    fn encode(&self, w: &mut Writer) {
        w.buf.reserve(4 + self.key.len() + 30);
        w.bytes(&self.key).u32(self.db).u8(self.key_type as u8).u64(self.size).u64(self.idle_ms).u8(self.lfu);
        w.i64(self.ttl_ms.map_or(-1, |t| t as i64));
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let key = Cow::Borrowed(r.bytes()?);
        // The fixed-size rest in one bounds check, read where it lies: a
        // decision decodes many, and every wasm instruction costs fuel.
        let f: &[u8; 30] = r.take(30)?.try_into().map_err(|_| DecodeError::Truncated)?;
        let u64_at = |i: usize| u64::from_le_bytes([f[i], f[i + 1], f[i + 2], f[i + 3], f[i + 4], f[i + 5], f[i + 6], f[i + 7]]);
        Ok(Candidate {
            key,
            db: u32::from_le_bytes([f[0], f[1], f[2], f[3]]),
            key_type: KeyType::from_tag(f[4])?,
            size: u64_at(5),
            idle_ms: u64_at(13),
            lfu: f[21],
            ttl_ms: u64::try_from(u64_at(22) as i64).ok(),
        })
    }
}

/// What a tenant uses now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub memory_bytes: u64,
    pub keys: u64,
    /// Operations in the last second.
    pub ops_per_second: u64,
    pub connections: u64,
    pub databases: u64,
}

/// A tenant's limits (0 never means unlimited here: the host sends what it enforces).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub keys: u64,
    pub ops_per_second: u64,
    pub connections: u64,
    pub databases: u64,
}

macro_rules! wire_u64_struct {
    ($name:ident { $($field:ident),+ }) => {
        impl<'a> Wire<'a> for $name {
            fn encode(&self, w: &mut Writer) {
                $(w.u64(self.$field);)+
            }
            fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                Ok($name { $($field: r.u64()?),+ })
            }
        }
    };
}

wire_u64_struct!(Usage { memory_bytes, keys, ops_per_second, connections, databases });
wire_u64_struct!(Limits { memory_bytes, keys, ops_per_second, connections, databases });

/// The eviction hook's question: the tenant must free memory; which of these go?
#[derive(Debug, Clone, PartialEq)]
pub struct EvictInput<'a> {
    pub tenant: Cow<'a, str>,
    pub usage: Usage,
    pub limits: Limits,
    /// Bytes to free: what is over the memory limit plus room for a few
    /// candidates (the host asks for four), so one decision serves several writes.
    pub to_free: u64,
    pub candidates: Vec<Candidate<'a>>,
}

impl EvictInput<'_> {
    /// Encodes a question whose candidates come from an iterator, so the
    /// host writes its samples without collecting them into a `Vec` first.
    /// [`Wire::encode`] is this over `self.candidates`.
    pub fn encode_from<'c, C: Borrow<Candidate<'c>>>(
        w: &mut Writer,
        tenant: &str,
        usage: &Usage,
        limits: &Limits,
        to_free: u64,
        candidates: impl ExactSizeIterator<Item = C>,
    ) {
        w.str(tenant);
        usage.encode(w);
        limits.encode(w);
        w.u64(to_free);
        w.u32(candidates.len() as u32);
        candidates.for_each(|c| c.borrow().encode(w));
    }
}

impl<'a> Wire<'a> for EvictInput<'a> {
    fn encode(&self, w: &mut Writer) {
        EvictInput::encode_from(w, &self.tenant, &self.usage, &self.limits, self.to_free, self.candidates.iter());
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(EvictInput {
            tenant: Cow::Borrowed(r.str()?),
            usage: Usage::decode(r)?,
            limits: Limits::decode(r)?,
            to_free: r.u64()?,
            candidates: Vec::decode(r)?,
        })
    }
}

/// The eviction hook's answer: indexes into the candidates, evicted in this
/// order. Empty means "use the native policy".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvictOutput {
    pub victims: Vec<u32>,
}

impl<'a> Wire<'a> for EvictOutput {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.victims.len() as u32);
        self.victims.iter().for_each(|v| {
            w.u32(*v);
        });
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let n = r.count(4)?;
        Ok(EvictOutput { victims: (0..n).map(|_| r.u32()).collect::<Result<_, _>>()? })
    }
}

/// The quota hook's question.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaInput<'a> {
    pub tenant: Cow<'a, str>,
    /// The command's name, lower case.
    pub command: Cow<'a, str>,
    pub class: CommandClass,
    pub resource: Resource,
    pub usage: Usage,
    pub limits: Limits,
}

impl<'a> Wire<'a> for QuotaInput<'a> {
    fn encode(&self, w: &mut Writer) {
        w.str(&self.tenant).str(&self.command);
        self.class.encode(w);
        self.resource.encode(w);
        self.usage.encode(w);
        self.limits.encode(w);
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(QuotaInput {
            tenant: Cow::Borrowed(r.str()?),
            command: Cow::Borrowed(r.str()?),
            class: CommandClass::decode(r)?,
            resource: Resource::decode(r)?,
            usage: Usage::decode(r)?,
            limits: Limits::decode(r)?,
        })
    }
}

/// The quota hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaDecision {
    /// Whatever the host would have done without a policy.
    Native,
    /// Let the command run, even over the limit in question.
    Allow,
    /// Refuse it; the message is the client's error reply (a leading
    /// upper-case word is its error code, as in Redis).
    Deny(String),
    /// The host's decision stands, and the connection then pauses this long.
    Throttle { ms: u32 },
}

impl<'a> Wire<'a> for QuotaDecision {
    fn encode(&self, w: &mut Writer) {
        match self {
            QuotaDecision::Native => {
                w.u8(0);
            }
            QuotaDecision::Allow => {
                w.u8(1);
            }
            QuotaDecision::Deny(m) => {
                w.u8(2).str(m);
            }
            QuotaDecision::Throttle { ms } => {
                w.u8(3).u32(*ms);
            }
        }
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => QuotaDecision::Native,
            1 => QuotaDecision::Allow,
            2 => QuotaDecision::Deny(r.string()?),
            3 => QuotaDecision::Throttle { ms: r.u32()? },
            t => return Err(DecodeError::BadTag(t)),
        })
    }
}

/// What a tenant used during one billing interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageDelta {
    pub interval_ms: u64,
    pub reads: u64,
    pub writes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Memory held, integrated over the interval.
    pub memory_byte_seconds: u64,
    pub evictions: u64,
}

wire_u64_struct!(UsageDelta { interval_ms, reads, writes, bytes_in, bytes_out, memory_byte_seconds, evictions });

/// The billing hook's question.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingInput<'a> {
    pub tenant: Cow<'a, str>,
    pub tier: Cow<'a, str>,
    pub now_ms: u64,
    pub delta: UsageDelta,
    pub usage: Usage,
}

impl<'a> Wire<'a> for BillingInput<'a> {
    fn encode(&self, w: &mut Writer) {
        w.str(&self.tenant).str(&self.tier).u64(self.now_ms);
        self.delta.encode(w);
        self.usage.encode(w);
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(BillingInput {
            tenant: Cow::Borrowed(r.str()?),
            tier: Cow::Borrowed(r.str()?),
            now_ms: r.u64()?,
            delta: UsageDelta::decode(r)?,
            usage: Usage::decode(r)?,
        })
    }
}

/// One line of a bill: the host adds lines with the same name and unit.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    pub name: String,
    pub unit: String,
    pub quantity: f64,
    pub amount: f64,
}

impl<'a> Wire<'a> for LineItem {
    fn encode(&self, w: &mut Writer) {
        w.str(&self.name).str(&self.unit).f64(self.quantity).f64(self.amount);
    }
    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(LineItem { name: r.string()?, unit: r.string()?, quantity: r.f64()?, amount: r.f64()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Decodes what was encoded, and refuses every strict prefix rather
    /// than misreading it.
    macro_rules! round_trip {
        ($t:ty, $v:expr) => {{
            let v: $t = $v;
            let b = v.to_bytes();
            assert_eq!(<$t>::from_bytes(&b).unwrap(), v);
            for n in 0..b.len() {
                assert!(<$t>::from_bytes(&b[..n]).is_err(), "prefix {n} of {v:?} decoded");
            }
        }};
    }

    #[test]
    fn every_message_round_trips_and_prefixes_are_refused() {
        let c = Candidate { key: Cow::Borrowed(b"k"), db: 3, key_type: KeyType::Hash, size: 9, idle_ms: 7, lfu: 5, ttl_ms: Some(4) };
        round_trip!(
            EvictInput,
            EvictInput {
                tenant: "t".into(),
                usage: Usage { memory_bytes: 1, keys: 2, ..Usage::default() },
                limits: Limits { memory_bytes: 3, ..Limits::default() },
                to_free: 10,
                candidates: vec![c.clone(), Candidate { ttl_ms: None, ..c }],
            }
        );
        round_trip!(EvictOutput, EvictOutput { victims: vec![2, 0] });
        round_trip!(QuotaDecision, QuotaDecision::Deny("QUOTA no".into()));
        round_trip!(QuotaDecision, QuotaDecision::Throttle { ms: 30 });
        round_trip!(Vec<LineItem>, vec![LineItem { name: "ops".into(), unit: "M".into(), quantity: 1.5, amount: 0.25 }]);
        round_trip!(
            QuotaInput,
            QuotaInput {
                tenant: "t".into(),
                command: "set".into(),
                class: CommandClass::Write,
                resource: Resource::Memory,
                usage: Usage::default(),
                limits: Limits::default(),
            }
        );
    }

    #[test]
    fn hostile_input_is_refused() {
        assert_eq!(QuotaDecision::from_bytes(&[9]), Err(DecodeError::BadTag(9)));
        // A count of four billion items in a five-byte buffer.
        assert_eq!(EvictOutput::from_bytes(&[0xff, 0xff, 0xff, 0xff, 0]), Err(DecodeError::Truncated));
        assert_eq!(QuotaDecision::from_bytes(&[1, 0]), Err(DecodeError::Trailing(1)));
        assert_eq!(crate::unpack(-1), None);
        assert_eq!(crate::unpack(crate::pack(16, 3)), Some((16, 3)));
    }
}
