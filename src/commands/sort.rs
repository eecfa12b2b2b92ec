//! SORT and SORT_RO: a list's, set's or sorted set's elements, ordered by
//! themselves or by other keys (BY), mapped through other keys (GET), and
//! returned or stored as a list. BY and GET patterns read keys of the
//! caller's own keyspace (its tenant's), as every key a command names.

use std::cmp::Ordering;

use super::args::{int, is};
use super::hashes::as_hash;
use super::{CmdError, CmdResult, Ctx};
use crate::store::{ListValue, Value};

/// SORT's options, as Redis parses them (later ones override earlier ones;
/// a constant BY pattern turns sorting off for good).
struct Options<'a> {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    dont_sort: bool,
    gets: Vec<&'a [u8]>,
}

fn parse<'a>(a: &[&'a [u8]], read_only: bool) -> Result<Options<'a>, CmdError> {
    let mut o = Options { desc: false, alpha: false, limit: None, store: None, by: None, dont_sort: false, gets: Vec::new() };
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let w = a[j];
        if is(w, "asc") {
            o.desc = false;
        } else if is(w, "desc") {
            o.desc = true;
        } else if is(w, "alpha") {
            o.alpha = true;
        } else if is(w, "limit") && left >= 2 {
            o.limit = Some((int(a[j + 1])?, int(a[j + 2])?));
            j += 2;
        } else if !read_only && is(w, "store") && left >= 1 {
            o.store = Some(a[j + 1]);
            j += 1;
        } else if is(w, "by") && left >= 1 {
            o.by = Some(a[j + 1]);
            o.dont_sort |= !a[j + 1].contains(&b'*');
            j += 1;
        } else if is(w, "get") && left >= 1 {
            o.gets.push(a[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// The key SORT ... STORE writes, for admission (the table cannot place it).
pub fn store_key<'a>(a: &[&'a [u8]]) -> Option<&'a [u8]> {
    parse(a, false).ok().and_then(|o| o.store)
}

/// What a BY or GET pattern names for `elem`: `#` is the element itself; the
/// first `*` is replaced by it; `key->field` reads a hash field. A pattern
/// without `*`, a missing key or one of another type reads as nothing.
fn lookup(ctx: &Ctx, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(elem.to_vec());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let arrow = pattern[star + 1..].windows(2).position(|w| w == b"->").map(|p| p + star + 1).filter(|&p| p + 2 < pattern.len());
    let (key_end, field) = match arrow {
        Some(p) => (p, Some(&pattern[p + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(key_end + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(&pattern[star + 1..key_end]);
    let found = ctx.db().read(&key, ctx.now_ms, ctx.touch, |e| match (field, &e.value) {
        (Some(f), v) => as_hash(v).ok().and_then(|h| h.get(f)).map(|x| x.to_vec()),
        (None, Value::Str(s, _)) => Some(s.to_vec()),
        _ => None,
    });
    ctx.looked_up(&key, found.is_some());
    found.flatten()
}

/// The elements to sort, in the value's own order (reversed for DESC when
/// nothing is sorted, as Redis walks lists and sorted sets backwards).
fn load(ctx: &Ctx, key: &[u8], reverse: bool) -> Result<(Vec<Vec<u8>>, bool), CmdError> {
    let loaded = ctx.db().read(key, ctx.now_ms, ctx.touch, |e| -> Result<(Vec<Vec<u8>>, bool), CmdError> {
        let mut items: Vec<Vec<u8>> = match &e.value {
            Value::List(l) => l.iter().map(|x| x.to_vec()).collect(),
            Value::ZSet(z) => z.iter().map(|(m, _)| m.to_vec()).collect(),
            Value::Set(s) => return Ok((s.members().into_iter().map(|m| m.to_vec()).collect(), true)),
            _ => return Err(CmdError::WrongType),
        };
        if reverse {
            items.reverse();
        }
        Ok((items, false))
    });
    ctx.looked_up(key, loaded.is_some());
    loaded.unwrap_or_else(|| Ok((Vec::new(), false)))
}

/// A number as C's `strtod` reads a whole string: Redis's double parsing,
/// with leading spaces allowed.
fn sort_score(b: &[u8]) -> Option<f64> {
    super::args::parse_f64(b.trim_ascii_start())
}

/// Redis's LIMIT arithmetic: the `start..=end` slice of `len` elements.
fn window(limit: Option<(i64, i64)>, len: usize) -> std::ops::Range<usize> {
    let len = len as i64;
    let (start, count) = limit.unwrap_or((0, -1));
    let start = start.clamp(0, len);
    let count = count.clamp(-1, len);
    let end = if count < 0 { len - 1 } else { start + count - 1 }.min(len - 1);
    if start >= len || end < start { 0..0 } else { start as usize..end as usize + 1 }
}

/// Sorts `items` as Redis does: by number (ties by the element's bytes) or
/// by bytes (ALPHA), each by the element or by what BY names for it.
fn sort_items(ctx: &Ctx, items: Vec<Vec<u8>>, o: &Options) -> Result<Vec<Vec<u8>>, CmdError> {
    let by = |x: &[u8]| match o.by {
        Some(p) => lookup(ctx, p, x),
        None => Some(x.to_vec()),
    };
    if o.alpha {
        let mut keyed: Vec<(Option<Vec<u8>>, Vec<u8>)> = items.into_iter().map(|x| (by(&x), x)).collect();
        keyed.sort_by(|(ka, _), (kb, _)| {
            let c = ka.cmp(kb);
            if o.desc { c.reverse() } else { c }
        });
        return Ok(keyed.into_iter().map(|(_, x)| x).collect());
    }
    let mut bad = false;
    let mut scored: Vec<(f64, Vec<u8>)> = items
        .into_iter()
        .map(|x| {
            let score = by(&x).map_or(0.0, |v| {
                sort_score(&v).unwrap_or_else(|| {
                    bad = true;
                    0.0
                })
            });
            (score, x)
        })
        .collect();
    if bad {
        return Err(CmdError::err("One or more scores can't be converted into double"));
    }
    scored.sort_by(|(sa, xa), (sb, xb)| {
        let c = sa.partial_cmp(sb).unwrap_or(Ordering::Equal).then_with(|| xa.cmp(xb));
        if o.desc { c.reverse() } else { c }
    });
    Ok(scored.into_iter().map(|(_, x)| x).collect())
}

fn sort_generic(ctx: &mut Ctx, a: &[&[u8]], read_only: bool) -> CmdResult {
    let mut o = parse(a, read_only)?;
    let (items, is_set) = load(ctx, a[1], o.desc && o.dont_sort)?;
    if o.dont_sort && is_set && o.store.is_some() {
        // A stored result must not depend on the set's internal order.
        (o.dont_sort, o.alpha, o.by) = (false, true, None);
    }
    let items = if o.dont_sort { items } else { sort_items(ctx, items, &o)? };
    let range = window(o.limit, items.len());
    let Some(dest) = o.store else {
        let width = o.gets.len().max(1);
        ctx.out.array(range.len() * width);
        for x in &items[range] {
            if o.gets.is_empty() {
                ctx.out.bulk(x);
            }
            for g in &o.gets {
                match lookup(ctx, g, x) {
                    Some(v) => ctx.out.bulk(&v),
                    None => ctx.out.null(),
                }
            }
            if ctx.out.over_limit() {
                break;
            }
        }
        return Ok(());
    };
    let stored = build_list(ctx, &items[range], &o.gets)?;
    let n = stored.len();
    ctx.store_or_delete(dest, (n > 0).then(|| Value::List(Box::new(stored))), super::notify::LIST, "sortstore");
    ctx.out.int(n as i64);
    Ok(())
}

/// The list SORT ... STORE writes (a missing GET value is an empty string).
/// For a tenant it must fit what is left of its memory: GET can read the
/// same big value for every element, so the arguments do not bound it.
fn build_list(ctx: &Ctx, items: &[Vec<u8>], gets: &[&[u8]]) -> Result<ListValue, CmdError> {
    let room = ctx.client.tenant.as_ref().map_or(u64::MAX, |t| t.limits().memory_bytes.saturating_sub(t.memory_used()));
    let mut list = ListValue::default();
    let mut push = |v: &[u8]| -> CmdResult {
        list.push(v, false);
        if list.bytes() as u64 > room {
            return Err(CmdError::msg("OOM command not allowed when used memory > 'maxmemory'."));
        }
        Ok(())
    };
    for x in items {
        if gets.is_empty() {
            push(x)?;
        }
        for g in gets {
            push(&lookup(ctx, g, x).unwrap_or_default())?;
        }
    }
    Ok(list)
}

pub fn sort(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    sort_generic(ctx, a, false)
}

pub fn sort_ro(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    sort_generic(ctx, a, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_windows_follow_redis_arithmetic() {
        assert_eq!(window(None, 5), 0..5);
        assert_eq!(window(Some((1, 2)), 5), 1..3);
        assert_eq!(window(Some((-3, 2)), 5), 0..2);
        assert_eq!(window(Some((4, 100)), 5), 4..5);
        assert_eq!(window(Some((5, 1)), 5), 0..0);
        assert_eq!(window(Some((0, 0)), 5), 0..0);
        assert_eq!(window(Some((2, -7)), 5), 2..5);
        assert_eq!(window(Some((0, 1)), 0), 0..0);
    }

    #[test]
    fn scores_read_like_strtod() {
        assert_eq!(sort_score(b" 1.5"), Some(1.5));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"1.5 "), None);
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"abc"), None);
    }
}
