//! Streams: XADD, XRANGE/XREVRANGE, XLEN, XDEL, XTRIM, XSETID, XREAD and
//! XREADGROUP (blocking like the list pops: woken by XADD in the same
//! space only). Consumer-group management is in `stream_groups`.

use std::sync::Arc;

use super::args::{int, is};
use super::lists::block_on;
use super::notify::STREAM;
use super::{CmdError, CmdResult, Ctx};
use crate::protocol::Out;
use crate::store::listpack::Item;
use crate::store::stream::{EntryRef, Group, StreamEntry, StreamId, StreamValue, Trim};
use crate::store::{Slot, Value};

pub fn as_stream(v: &Value) -> Result<&StreamValue, CmdError> {
    match v {
        Value::Stream(s) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

pub fn as_stream_mut(v: &mut Value) -> Result<&mut StreamValue, CmdError> {
    match v {
        Value::Stream(s) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

pub fn invalid_id() -> CmdError {
    CmdError::err("Invalid stream ID specified as stream command argument")
}

/// An ID where `-` and `+` are refused.
pub fn strict_id(a: &[u8]) -> Result<StreamId, CmdError> {
    StreamId::parse(a, 0, true, false).map(|(id, _)| id).ok_or_else(invalid_id)
}

/// A range bound: `(` makes it exclusive; a missing seq is `missing_seq`.
pub fn interval_id(a: &[u8], missing_seq: u64, start: bool) -> Result<StreamId, CmdError> {
    if a.len() > 1 && a[0] == b'(' {
        let id = StreamId::parse(&a[1..], missing_seq, true, false).map(|(id, _)| id).ok_or_else(invalid_id)?;
        let moved = if start { id.incr() } else { id.decr() };
        return moved
            .ok_or_else(|| CmdError::err(if start { "invalid start ID for the interval" } else { "invalid end ID for the interval" }));
    }
    StreamId::parse(a, missing_seq, false, false).map(|(id, _)| id).ok_or_else(invalid_id)
}

pub fn reply_id(out: &mut Out, id: StreamId) {
    out.bulk(id.text().as_bytes());
}

fn reply_item(out: &mut Out, x: Item) {
    match x {
        Item::Str(s) => out.bulk(s),
        Item::Int(n) => out.bulk_int(n),
    }
}

fn reply_entry_ref(out: &mut Out, e: &EntryRef) {
    out.array(2);
    reply_id(out, e.id);
    out.array(e.fields.len() * 2);
    for &(f, v) in &e.fields {
        reply_item(out, f);
        reply_item(out, v);
    }
}

pub fn reply_entry(out: &mut Out, e: &StreamEntry) {
    let fields = e.fields.iter().map(|(f, v)| (Item::Str(f), Item::Str(v))).collect();
    reply_entry_ref(out, &EntryRef { id: e.id, fields });
}

/// The encoding parameters that shape stream nodes (the server's).
fn node_limits(ctx: &Ctx) -> (usize, usize) {
    let t = &ctx.state.config.read().tuning;
    let get = |i| t.get(i).max(0) as usize;
    (get(crate::tuning::STREAM_NODE_MAX_BYTES), get(crate::tuning::STREAM_NODE_MAX_ENTRIES))
}

/// XADD's and XTRIM's options.
#[derive(Default)]
struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    no_mkstream: bool,
    /// XADD: the ID (None for `*`) with whether its seq was given, and where it is.
    id: Option<(StreamId, bool)>,
    id_pos: usize,
}

fn parse_trim_args(ctx: &Ctx, a: &[&[u8]], xadd: bool) -> Result<TrimArgs, CmdError> {
    let mut t = TrimArgs::default();
    let mut limit_given = false;
    let mut i = 2;
    while i < a.len() {
        let more = a.len() - 1 - i;
        let opt = a[i];
        if xadd && opt == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if t.trim.is_some() {
                return Err(CmdError::err("syntax error, MAXLEN and MINID options at the same time are not compatible"));
            }
            t.approx = false;
            if more >= 2 && (a[i + 1] == b"~" || a[i + 1] == b"=") {
                t.approx = a[i + 1] == b"~";
                i += 1;
            }
            t.trim = Some(if is(opt, "maxlen") {
                let n = int(a[i + 1])?;
                if n < 0 {
                    return Err(CmdError::err("The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(strict_id(a[i + 1])?)
            });
            i += 2;
            continue;
        } else if is(opt, "limit") && more > 0 {
            let n = int(a[i + 1])?;
            if n < 0 {
                return Err(CmdError::err("The LIMIT argument must be >= 0."));
            }
            (t.limit, limit_given) = (n as u64, true);
            i += 2;
            continue;
        } else if xadd && is(opt, "nomkstream") {
            t.no_mkstream = true;
        } else if xadd {
            t.id = Some(StreamId::parse(opt, 0, true, true).ok_or_else(invalid_id)?);
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    t.id_pos = i;
    if t.limit > 0 && t.trim.is_none() {
        return Err(CmdError::err("syntax error, LIMIT cannot be used without specifying a trimming strategy"));
    }
    if !xadd && t.trim.is_none() {
        return Err(CmdError::err("syntax error, XTRIM must be called with a trimming strategy"));
    }
    if limit_given && !t.approx {
        return Err(CmdError::err("syntax error, LIMIT cannot be used without the special ~ option"));
    }
    if t.approx && !limit_given {
        let per_node = node_limits(ctx).1 as u64;
        t.limit = (100 * per_node).clamp(1, 1_000_000);
        if per_node == 0 {
            t.limit = 10_000;
        }
    } else if !t.approx {
        t.limit = 0;
    }
    Ok(t)
}

/// What a trim is logged as: exact, at where it stopped, so replay does
/// the same whatever the node layout then.
fn exact_trim(s: &StreamValue, trim: Trim) -> Vec<Vec<u8>> {
    match trim {
        Trim::MaxLen(_) => vec![b"MAXLEN".to_vec(), b"=".to_vec(), s.len().to_string().into_bytes()],
        Trim::MinId(_) => vec![b"MINID".to_vec(), b"=".to_vec(), s.edge(false).unwrap_or(StreamId::MIN).to_string().into_bytes()],
    }
}

/// The ID XADD gave its entry, and the trim it is logged with.
/// The ID XADD got, its exact trim for the log, whether it trimmed.
type Added = (StreamId, Vec<Vec<u8>>, bool);

pub fn xadd(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let t = parse_trim_args(ctx, a, true)?;
    let field_pos = t.id_pos + 1;
    if a.len() < field_pos + 2 || (a.len() - field_pos) % 2 == 1 {
        return Err(CmdError::Arity("xadd".into()));
    }
    if let Some((id, true)) = t.id
        && id.is_zero()
    {
        return Err(CmdError::err("The ID specified in XADD must be greater than 0-0"));
    }
    let fields: smallvec::SmallVec<[(&[u8], &[u8]); 8]> = a[field_pos..].chunks(2).map(|p| (p[0], p[1])).collect();
    let (now, (node_bytes, node_entries)) = (ctx.now_ms, node_limits(ctx));
    let added = ctx.db().write(a[1], now, |slot| -> Result<Option<Added>, CmdError> {
        if slot.value().is_none() && t.no_mkstream {
            return Ok(None);
        }
        let s = stream_for_write(slot)?;
        if s.last_id == StreamId::MAX {
            return Err(CmdError::err("The stream has exhausted the last possible ID, unable to add more items"));
        }
        let id = s.append(t.id, now, &fields, node_bytes, node_entries).map_err(|order| {
            CmdError::err(if order {
                "The ID specified in XADD is equal or smaller than the target stream top item"
            } else {
                "Elements are too large to be stored"
            })
        })?;
        let (mut trim_args, mut trimmed) = (Vec::new(), false);
        if let Some(trim) = t.trim {
            trimmed = s.trim(trim, t.approx, t.limit) > 0;
            trim_args = exact_trim(s, trim);
        }
        Ok(Some((id, trim_args, trimmed)))
    })?;
    let Some((id, trim_args, trimmed)) = added else {
        ctx.client.unchanged = true;
        ctx.out.null();
        return Ok(());
    };
    ctx.notify(STREAM, "xadd", a[1]);
    if trimmed {
        ctx.notify(STREAM, "xtrim", a[1]);
    }
    reply_id(ctx.out, id);
    if ctx.state.persistence().is_none() {
        return Ok(());
    }
    // Logged with the ID it got and an exact trim.
    let mut logged: Vec<Vec<u8>> = vec![b"XADD".to_vec(), a[1].to_vec()];
    logged.extend(trim_args);
    logged.push(id.to_string().into_bytes());
    logged.extend(a[field_pos..].iter().map(|x| x.to_vec()));
    ctx.client.propagate = Some(logged);
    Ok(())
}

/// The stream at the slot, created empty if missing.
pub fn stream_for_write<'s>(slot: &'s mut Slot<'_>) -> Result<&'s mut StreamValue, CmdError> {
    if slot.value().is_none() {
        slot.set(Value::Stream(Box::default()));
    }
    as_stream_mut(slot.value_mut().expect("just made"))
}

fn xrange_generic(ctx: &mut Ctx, a: &[&[u8]], rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev { (a[3], a[2]) } else { (a[2], a[3]) };
    let start = interval_id(start_arg, 0, true)?;
    let end = interval_id(end_arg, u64::MAX, false)?;
    let mut count: Option<u64> = None;
    let mut j = 4;
    while j < a.len() {
        if is(a[j], "count") && j + 1 < a.len() {
            count = Some(int(a[j + 1])?.max(0) as u64);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let (db, now, touch) = (ctx.db(), ctx.now_ms, ctx.touch);
    let out = &mut *ctx.out;
    let found = db.read(a[1], now, touch, |e| -> CmdResult {
        let s = as_stream(&e.value)?;
        match count {
            Some(0) => out.null_array(),
            _ => reply_range(out, s, start, end, rev, count.unwrap_or(0)),
        }
        Ok(())
    });
    match found {
        Some(r) => {
            ctx.keyhit();
            r
        }
        None => {
            ctx.keymiss(a[1]);
            ctx.out.array(0);
            Ok(())
        }
    }
}

/// Writes the entries from `start` to `end` (at most `count`, 0: all)
/// straight from their nodes into the reply, in one pass, the array's
/// header put in front once they are counted; no copy of a long range is
/// held, and the writing stops at the output limit.
pub fn reply_range(out: &mut Out, s: &StreamValue, start: StreamId, end: StreamId, rev: bool, count: u64) {
    let at = out.buf.len();
    let mut n = 0u64;
    s.range_refs(start, end, rev, |e| {
        reply_entry_ref(out, &e);
        n += 1;
        (count == 0 || n < count) && !out.over_limit()
    });
    out.array_at(at, n as usize);
}

pub fn xrange(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    xrange_generic(ctx, a, false)
}

pub fn xrevrange(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    xrange_generic(ctx, a, true)
}

pub fn xlen(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = ctx.db().read(a[1], ctx.now_ms, ctx.touch, |e| as_stream(&e.value).map(|s| s.len()));
    ctx.looked_up(a[1], n.is_some());
    let n = n.transpose()?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn xdel(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let deleted = ctx.db().write(a[1], now, |slot| -> Result<usize, CmdError> {
        let Some(v) = slot.value_mut() else { return Ok(0) };
        let s = as_stream_mut(v)?;
        let ids = a[2..].iter().map(|x| strict_id(x)).collect::<Result<Vec<_>, _>>()?;
        let gone: Vec<StreamId> = ids.into_iter().filter(|&id| s.delete(id)).collect();
        s.after_delete(&gone);
        Ok(gone.len())
    })?;
    if deleted > 0 {
        ctx.notify(STREAM, "xdel", a[1]);
    }
    ctx.reply_changed(deleted);
    Ok(())
}

pub fn xtrim(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let t = parse_trim_args(ctx, a, false)?;
    let trim = t.trim.expect("XTRIM has a strategy");
    let now = ctx.now_ms;
    let (deleted, logged) = ctx.db().write(a[1], now, |slot| -> Result<(u64, Vec<Vec<u8>>), CmdError> {
        let Some(v) = slot.value_mut() else { return Ok((0, Vec::new())) };
        let s = as_stream_mut(v)?;
        let n = s.trim(trim, t.approx, t.limit);
        Ok((n, exact_trim(s, trim)))
    })?;
    if deleted > 0 {
        ctx.notify(STREAM, "xtrim", a[1]);
        let mut argv = vec![b"XTRIM".to_vec(), a[1].to_vec()];
        argv.extend(logged);
        ctx.client.propagate = Some(argv);
    }
    ctx.reply_changed(deleted as usize);
    Ok(())
}

pub fn xsetid(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let id = strict_id(a[2])?;
    let (mut added, mut max_deleted) = (None, StreamId::MIN);
    let mut i = 3;
    while i < a.len() {
        if is(a[i], "entriesadded") && i + 1 < a.len() {
            let n = int(a[i + 1])?;
            if n < 0 {
                return Err(CmdError::err("entries_added must be positive"));
            }
            added = Some(n as u64);
        } else if is(a[i], "maxdeletedid") && i + 1 < a.len() {
            max_deleted = strict_id(a[i + 1])?;
            if id < max_deleted {
                return Err(CmdError::err("The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
            }
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let now = ctx.now_ms;
    ctx.db().write(a[1], now, |slot| -> CmdResult {
        let s = as_stream_mut(slot.value_mut().ok_or(CmdError::NoSuchKey)?)?;
        if !s.is_empty() {
            if id < s.last_valid_id() {
                return Err(CmdError::err("The ID specified in XSETID is smaller than the target stream top item"));
            }
            if added.is_some_and(|n| s.len() > n) {
                return Err(CmdError::err("The entries_added specified in XSETID is smaller than the target stream length"));
            }
        }
        s.last_id = id;
        if let Some(n) = added {
            s.entries_added = n;
        }
        if !max_deleted.is_zero() {
            s.max_deleted_id = max_deleted;
        }
        Ok(())
    })?;
    ctx.notify(STREAM, "xsetid", a[1]);
    ctx.out.ok();
    Ok(())
}

/// XREAD's and XREADGROUP's arguments.
struct ReadArgs<'a> {
    block_ms: Option<u64>,
    count: u64,
    count_given: bool,
    group: Option<(&'a [u8], &'a [u8])>,
    noack: bool,
    keys: Vec<&'a [u8]>,
    ids: Vec<&'a [u8]>,
}

/// A timeout in milliseconds, as Redis reads BLOCK's and WAIT's.
pub(super) fn block_ms(a: &[u8]) -> Result<u64, CmdError> {
    let n = crate::protocol::parse::parse_i64(a).ok_or_else(|| CmdError::err("timeout is not an integer or out of range"))?;
    if n < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    Ok(n as u64)
}

fn parse_read<'a>(a: &[&'a [u8]], group_cmd: bool) -> Result<ReadArgs<'a>, CmdError> {
    let mut r = ReadArgs { block_ms: None, count: 0, count_given: false, group: None, noack: false, keys: Vec::new(), ids: Vec::new() };
    let mut i = 1;
    let mut streams_at = None;
    while i < a.len() {
        let more = a.len() - i - 1;
        let o = a[i];
        if is(o, "block") && more > 0 {
            r.block_ms = Some(block_ms(a[i + 1])?);
            i += 1;
        } else if is(o, "count") && more > 0 {
            r.count = int(a[i + 1])?.max(0) as u64;
            r.count_given = true;
            i += 1;
        } else if is(o, "streams") && more > 0 {
            if !(a.len() - i - 1).is_multiple_of(2) {
                return Err(CmdError::err("Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
            }
            streams_at = Some(i + 1);
            break;
        } else if is(o, "group") && more >= 2 {
            if !group_cmd {
                return Err(CmdError::err("The GROUP option is only supported by XREADGROUP. You called XREAD instead."));
            }
            r.group = Some((a[i + 1], a[i + 2]));
            i += 2;
        } else if is(o, "noack") {
            if !group_cmd {
                return Err(CmdError::err("The NOACK option is only supported by XREADGROUP. You called XREAD instead."));
            }
            r.noack = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let at = streams_at.ok_or(CmdError::Syntax)?;
    if group_cmd && r.group.is_none() {
        return Err(CmdError::err("Missing GROUP option for XREADGROUP"));
    }
    let n = (a.len() - at) / 2;
    r.keys = a[at..at + n].to_vec();
    r.ids = a[at + n..].to_vec();
    Ok(r)
}

/// Where each stream's read starts (after this ID); `>` is `None`.
fn resolve_ids(ctx: &Ctx, r: &ReadArgs) -> Result<Vec<Option<StreamId>>, CmdError> {
    let mut out = Vec::with_capacity(r.keys.len());
    for (k, id) in r.keys.iter().zip(&r.ids) {
        let stream =
            ctx.db().read(k, ctx.now_ms, false, |e| as_stream(&e.value).map(|s| (s.last_id, r.group.map(|(g, _)| s.group(g).is_some()))));
        ctx.looked_up(k, stream.is_some());
        let stream = stream.transpose()?;
        if let Some((g, _)) = r.group
            && stream.is_none_or(|(_, has)| has != Some(true))
        {
            return Err(CmdError::msg(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(g)
            )));
        }
        out.push(match *id {
            b"$" if r.group.is_some() => {
                return Err(CmdError::err(
                    "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                ));
            }
            b"$" => Some(stream.map_or(StreamId::MIN, |(last, _)| last)),
            b">" if r.group.is_none() => {
                return Err(CmdError::err("The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
            }
            b">" => None,
            other => Some(strict_id(other)?),
        });
    }
    Ok(out)
}

/// What XREAD(GROUP) returns for one ID: the entry, or (a consumer's
/// history) the ID of a pending entry deleted from the stream.
pub enum Read {
    Entry(StreamEntry),
    Deleted(StreamId),
}

/// One stream's part of an XREAD reply.
type Served = (Vec<u8>, Vec<Read>);

pub fn xread(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    read_generic(ctx, a, false)
}

pub fn xreadgroup(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    read_generic(ctx, a, true)
}

fn read_generic(ctx: &mut Ctx, a: &[&[u8]], group_cmd: bool) -> CmdResult {
    let r = parse_read(a, group_cmd)?;
    if r.block_ms.is_some() && ctx.client.in_script {
        return Err(CmdError::err(format!("{} command is not allowed with BLOCK option from scripts", String::from_utf8_lossy(a[0]))));
    }
    let after = resolve_ids(ctx, &r)?;
    let mut served: Vec<Served> = Vec::new();
    for (k, from) in r.keys.iter().zip(&after) {
        let entries = match r.group {
            None => read_plain(ctx, k, from.expect("XREAD ids are concrete"), r.count),
            Some((g, c)) => read_group(ctx, k, g, c, *from, r.count, r.noack)?,
        };
        if let Some(e) = entries {
            served.push((k.to_vec(), e));
        }
    }
    if served.is_empty() {
        ctx.client.unchanged = true;
        match r.block_ms {
            Some(ms) if !ctx.in_exec => {
                block_on(ctx, &r.keys, ms);
                if let Some(spec) = ctx.client.block.as_mut() {
                    spec.retry = Some(retry_argv(a, &r, &after));
                }
            }
            _ => ctx.out.null_array(),
        }
        return Ok(());
    }
    if ctx.out.resp3 {
        ctx.out.map(served.len())
    } else {
        ctx.out.array(served.len())
    }
    for (k, entries) in &served {
        if !ctx.out.resp3 {
            ctx.out.array(2);
        }
        ctx.out.bulk(k);
        ctx.out.array(entries.len());
        for e in entries {
            match e {
                Read::Entry(e) => reply_entry(ctx.out, e),
                Read::Deleted(id) => {
                    ctx.out.array(2);
                    reply_id(ctx.out, *id);
                    ctx.out.null_array();
                }
            }
        }
    }
    Ok(())
}

/// The entries of `key` after `from`, if there are any.
fn read_plain(ctx: &Ctx, key: &[u8], from: StreamId, count: u64) -> Option<Vec<Read>> {
    let found = ctx.db().read(key, ctx.now_ms, ctx.touch, |e| {
        let s = as_stream(&e.value).ok()?;
        if s.is_empty() || s.last_valid_id() <= from {
            return None;
        }
        let mut out = Vec::new();
        s.range(from.incr()?, StreamId::MAX, false, |entry| {
            out.push(Read::Entry(entry));
            count == 0 || (out.len() as u64) < count
        });
        Some(out)
    });
    ctx.looked_up(key, found.is_some());
    found.flatten()
}

/// XREADGROUP on one stream: new entries (`from` None, `>`) delivered to
/// the consumer and recorded as pending, or its own pending history.
fn read_group(
    ctx: &mut Ctx,
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    from: Option<StreamId>,
    count: u64,
    noack: bool,
) -> Result<Option<Vec<Read>>, CmdError> {
    let now = ctx.now_ms;
    let name: Arc<[u8]> = consumer.into();
    let mut created = false;
    let read = ctx.db().write(key, now, |slot| {
        let s = as_stream_mut(slot.value_mut().expect("checked"))?;
        let Some(g) = s.group(group) else { return Ok(None) };
        if from.is_none() && (s.is_empty() || s.last_valid_id() <= g.last_id) {
            return Ok(None);
        }
        let stream = s.clone();
        s.with_group(group, |g| {
            created = !g.consumers.contains_key(&name);
            g.consumer_mut(&name, now).seen_time = now;
            Ok(Some(match from {
                Some(start) => history(&stream, g, &name, start, count, now),
                None => deliver_new(&stream, g, &name, count, noack, now),
            }))
        })
        .expect("group exists")
    });
    if created {
        ctx.notify(STREAM, "xgroup-createconsumer", key);
    }
    read
}

/// New entries after the group's last delivered ID.
fn deliver_new(s: &StreamValue, g: &mut Group, consumer: &Arc<[u8]>, count: u64, noack: bool, now: u64) -> Vec<Read> {
    let mut out = Vec::new();
    let Some(start) = g.last_id.incr() else { return out };
    s.range(start, StreamId::MAX, false, |e| {
        let tombstones = s.range_has_tombstones(e.id, StreamId::MAX);
        g.entries_read = match g.entries_read {
            Some(n) if !tombstones => Some(n + 1),
            _ if s.entries_added > 0 => s.entries_before(e.id),
            other => other,
        };
        g.last_id = e.id;
        if !noack {
            g.deliver(e.id, consumer, now);
        }
        out.push(Read::Entry(e));
        count == 0 || (out.len() as u64) < count
    });
    out
}

/// The consumer's pending entries from `start`; a pending entry that was
/// deleted from the stream reads as an ID with no fields.
fn history(s: &StreamValue, g: &mut Group, consumer: &Arc<[u8]>, start: StreamId, count: u64, now: u64) -> Vec<Read> {
    let ids: Vec<StreamId> = match g.consumers.get(consumer) {
        Some(c) => c.pending.range(start..).take(if count == 0 { usize::MAX } else { count as usize }).copied().collect(),
        None => Vec::new(),
    };
    ids.into_iter()
        .map(|id| match s.get(id) {
            Some(e) => {
                if let Some(p) = g.pel.get_mut(&id) {
                    p.delivery_time = now;
                    p.delivery_count = p.delivery_count.wrapping_add(1);
                }
                Read::Entry(e)
            }
            None => Read::Deleted(id),
        })
        .collect()
}

/// What a blocked XREAD runs again when woken: `$` replaced by the ID it
/// meant when the command arrived, and Redis's count of 1000 when none
/// was given.
fn retry_argv(a: &[&[u8]], r: &ReadArgs, after: &[Option<StreamId>]) -> Vec<Vec<u8>> {
    let streams_at = a.len() - 2 * r.keys.len();
    let mut argv: Vec<Vec<u8>> = vec![a[0].to_vec()];
    if !r.count_given {
        argv.extend([b"COUNT".to_vec(), b"1000".to_vec()]);
    }
    argv.extend(a[1..streams_at].iter().map(|x| x.to_vec()));
    argv.extend(r.keys.iter().map(|k| k.to_vec()));
    for (id, resolved) in r.ids.iter().zip(after) {
        argv.push(match (*id, resolved) {
            (b"$", Some(v)) => v.to_string().into_bytes(),
            (other, _) => other.to_vec(),
        });
    }
    argv
}
