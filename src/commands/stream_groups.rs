//! Stream consumer groups: XGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, and
//! XINFO, with Redis 7.0's replies and errors.

use std::sync::Arc;

use super::args::{int, is, lower};
use super::notify::STREAM;
use super::streams::{as_stream, as_stream_mut, interval_id, reply_entry, reply_id, stream_for_write, strict_id};
use super::{CmdError, CmdResult, Ctx};
use crate::store::stream::{Group, StreamId, StreamValue};

fn no_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::msg(format!("NOGROUP No such key '{}' or consumer group '{}'", String::from_utf8_lossy(key), String::from_utf8_lossy(group)))
}

fn no_group_for_key(group: &[u8], key: &[u8]) -> CmdError {
    CmdError::msg(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

pub(super) fn subcommand_syntax(sub: &[u8], cmd: &str) -> CmdError {
    CmdError::err(format!("unknown subcommand or wrong number of arguments for '{}'. Try {cmd} HELP.", String::from_utf8_lossy(sub)))
}

/// XGROUP's subcommands with their Redis 7.0 arities (negative: at least).
fn xgroup_arity(sub: &str) -> Option<i64> {
    Some(match sub {
        "create" | "setid" => -5,
        "destroy" => 4,
        "createconsumer" | "delconsumer" => 5,
        "help" => 2,
        _ => return None,
    })
}

pub fn xgroup(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = lower(a[1]);
    let Some(arity) = xgroup_arity(&sub) else {
        return Err(CmdError::UnknownSubcommand { cmd: "XGROUP".into(), sub: String::from_utf8_lossy(a[1]).into() });
    };
    if (arity > 0 && a.len() as i64 != arity) || (arity < 0 && (a.len() as i64) < -arity) {
        return Err(CmdError::Arity(format!("xgroup|{sub}")));
    }
    if sub == "help" {
        super::keys::help_reply(
            ctx,
            &[
                "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
                "HELP",
                "    Prints this help.",
            ],
        );
        return Ok(());
    }
    let (mut mkstream, mut entries_read) = (false, None::<u64>);
    let mut i = 5;
    while i < a.len() {
        if sub == "create" && is(a[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (sub == "create" || sub == "setid") && is(a[i], "entriesread") && i + 1 < a.len() {
            let n = int(a[i + 1])?;
            if n < -1 {
                return Err(CmdError::err("value for ENTRIESREAD must be positive or -1"));
            }
            entries_read = (n >= 0).then_some(n as u64);
            i += 2;
        } else {
            return Err(subcommand_syntax(a[1], "XGROUP"));
        }
    }
    if (sub == "create" && a.len() > 8) || (sub == "setid" && a.len() != 5 && a.len() != 7) {
        return Err(subcommand_syntax(a[1], "XGROUP"));
    }
    let (key, name, now) = (a[2], a[3], ctx.now_ms);
    let db = ctx.client.db;
    let reply = ctx.db().write(key, now, |slot| -> Result<XGroupReply, CmdError> {
        if slot.value().is_none() && !(sub == "create" && mkstream) {
            return Err(CmdError::err(
                "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
            ));
        }
        if let Some(v) = slot.value() {
            let s = as_stream(v)?;
            if s.group(name).is_none() && matches!(sub.as_str(), "setid" | "createconsumer" | "delconsumer") {
                return Err(no_group_for_key(name, key));
            }
        }
        match sub.as_str() {
            "create" => {
                let last = slot.value().and_then(|v| as_stream(v).ok()).map(|s| s.last_id);
                let id = if a[4] == b"$" { last.unwrap_or(StreamId::MIN) } else { strict_id(a[4])? };
                let s = stream_for_write(slot)?;
                if !s.create_group(name, id, entries_read) {
                    return Err(CmdError::msg("BUSYGROUP Consumer Group name already exists"));
                }
                Ok(XGroupReply::Ok)
            }
            "setid" => {
                let s = as_stream_mut(slot.value_mut().expect("exists"))?;
                let id = if a[4] == b"$" { s.last_id } else { interval_free_id(a[4])? };
                s.with_group(name, |g| {
                    g.last_id = id;
                    g.entries_read = entries_read;
                });
                Ok(XGroupReply::Ok)
            }
            "destroy" => {
                let destroyed = as_stream_mut(slot.value_mut().expect("exists"))?.destroy_group(name);
                Ok(XGroupReply::Int(destroyed as i64, destroyed))
            }
            "createconsumer" => {
                let s = as_stream_mut(slot.value_mut().expect("exists"))?;
                let consumer: Arc<[u8]> = a[4].into();
                let created = s
                    .with_group(name, |g| {
                        let new = !g.consumers.contains_key(&consumer);
                        g.consumer_mut(&consumer, now);
                        new
                    })
                    .unwrap_or(false);
                Ok(XGroupReply::Int(created as i64, created))
            }
            _ => {
                let s = as_stream_mut(slot.value_mut().expect("exists"))?;
                let pending = s.with_group(name, |g| g.delete_consumer(a[4])).flatten();
                Ok(XGroupReply::Int(pending.unwrap_or(0) as i64, pending.is_some()))
            }
        }
    })?;
    let changed = match reply {
        XGroupReply::Ok => {
            ctx.out.ok();
            true
        }
        XGroupReply::Int(n, changed) => {
            ctx.client.unchanged = !changed;
            ctx.out.int(n);
            changed
        }
    };
    if changed {
        ctx.notify(STREAM, &format!("xgroup-{sub}"), key);
    }
    if sub == "destroy" {
        // Clients blocked in XREADGROUP on this group find it gone.
        ctx.space().blocking.signal(db, key);
    }
    Ok(())
}

enum XGroupReply {
    Ok,
    /// The reply and whether anything changed.
    Int(i64, bool),
}

/// An ID where `-` and `+` are allowed (XGROUP SETID, as Redis reads it).
fn interval_free_id(a: &[u8]) -> Result<StreamId, CmdError> {
    StreamId::parse(a, 0, false, false).map(|(id, _)| id).ok_or_else(super::streams::invalid_id)
}

pub fn xack(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    read_stream_first(ctx, a[1]);
    let acked = ctx.db().write(a[1], now, |slot| -> Result<usize, CmdError> {
        let Some(v) = slot.value_mut() else { return Ok(0) };
        let s = as_stream_mut(v)?;
        if s.group(a[2]).is_none() {
            return Ok(0);
        }
        let ids = a[3..].iter().map(|x| strict_id(x)).collect::<Result<Vec<_>, _>>()?;
        Ok(s.with_group(a[2], |g| ids.iter().filter(|&&id| g.ack(id)).count()).unwrap_or(0))
    })?;
    ctx.reply_changed(acked);
    Ok(())
}

pub fn xpending(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() != 3 && !(6..=9).contains(&a.len()) {
        return Err(CmdError::Syntax);
    }
    let mut range = None;
    if a.len() >= 6 {
        let (mut at, mut min_idle) = (3, 0i64);
        if is(a[3], "idle") {
            min_idle = int(a[4])?;
            if a.len() < 8 {
                return Err(CmdError::Syntax);
            }
            at += 2;
        }
        let count = int(a[at + 2])?.max(0) as usize;
        let start = interval_id(a[at], 0, true)?;
        let end = interval_id(a[at + 1], u64::MAX, false)?;
        range = Some((start, end, count, min_idle, a.get(at + 3).copied()));
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.read(a[1], now, ctx.touch, |e| -> CmdResult {
        let s = as_stream(&e.value)?;
        let g = s.group(a[2]).ok_or_else(|| no_group(a[1], a[2]))?;
        match range {
            None => pending_summary(out, g),
            Some((start, end, count, min_idle, consumer)) => pending_range(out, g, start, end, count, min_idle, consumer, now),
        }
        Ok(())
    });
    ctx.looked_up(a[1], found.is_some());
    found.unwrap_or_else(|| Err(no_group(a[1], a[2])))
}

fn pending_summary(out: &mut crate::protocol::Out, g: &Group) {
    out.array(4);
    out.int(g.pel.len() as i64);
    let (Some((first, _)), Some((last, _))) = (g.pel.get_min(), g.pel.get_max()) else {
        out.null();
        out.null();
        out.null_array();
        return;
    };
    reply_id(out, *first);
    reply_id(out, *last);
    let busy: Vec<_> = g.consumers.iter().filter(|(_, c)| !c.pending.is_empty()).collect();
    out.array(busy.len());
    for (name, c) in busy {
        out.array(2);
        out.bulk(name);
        out.bulk(c.pending.len().to_string().as_bytes());
    }
}

#[allow(clippy::too_many_arguments)]
fn pending_range(
    out: &mut crate::protocol::Out,
    g: &Group,
    start: StreamId,
    end: StreamId,
    count: usize,
    min_idle: i64,
    consumer: Option<&[u8]>,
    now: u64,
) {
    let ids: Vec<StreamId> = match consumer {
        Some(c) => match g.consumers.get(c) {
            Some(c) => c.pending.range(start..).take_while(|&&id| id <= end).copied().collect(),
            None => return out.array(0),
        },
        None => g.pel.range(start..).take_while(|(id, _)| **id <= end).map(|(id, _)| *id).collect(),
    };
    let idle = |t: u64| now.saturating_sub(t) as i64;
    let rows: Vec<(StreamId, &crate::store::stream::Pending)> = ids
        .into_iter()
        .filter_map(|id| g.pel.get(&id).map(|p| (id, p)))
        .filter(|(_, p)| min_idle == 0 || idle(p.delivery_time) >= min_idle)
        .take(count)
        .collect();
    out.array(rows.len());
    for (id, p) in rows {
        out.array(4);
        reply_id(out, id);
        out.bulk(&p.consumer);
        out.int(idle(p.delivery_time));
        out.int(p.delivery_count as i64);
    }
}

/// XCLAIM's options after the IDs.
struct ClaimOptions {
    force: bool,
    justid: bool,
    delivery_time: Option<i64>,
    retry_count: Option<i64>,
    last_id: StreamId,
}

fn option_int(a: &[u8], what: &str) -> Result<i64, CmdError> {
    int(a).map_err(|_| CmdError::err(format!("Invalid {what} option argument for XCLAIM")))
}

fn parse_claim_options(a: &[&[u8]], now: u64) -> Result<ClaimOptions, CmdError> {
    let mut o = ClaimOptions { force: false, justid: false, delivery_time: None, retry_count: None, last_id: StreamId::MIN };
    let mut j = 0;
    while j < a.len() {
        let more = a.len() - 1 - j;
        match lower(a[j]).as_str() {
            "force" => o.force = true,
            "justid" => o.justid = true,
            "idle" if more > 0 => {
                j += 1;
                o.delivery_time = Some(now as i64 - option_int(a[j], "IDLE")?);
            }
            "time" if more > 0 => {
                j += 1;
                o.delivery_time = Some(option_int(a[j], "TIME")?);
            }
            "retrycount" if more > 0 => {
                j += 1;
                o.retry_count = Some(option_int(a[j], "RETRYCOUNT")?);
            }
            "lastid" if more > 0 => {
                j += 1;
                o.last_id = strict_id(a[j])?;
            }
            _ => return Err(CmdError::err(format!("Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(a[j])))),
        }
        j += 1;
    }
    Ok(o)
}

/// What a claim replies with for one entry.
enum Claimed {
    Entry(crate::store::stream::StreamEntry),
    Id(StreamId),
}

pub fn xclaim(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (now, consumer): (u64, Arc<[u8]>) = (ctx.now_ms, a[3].into());
    read_stream_first(ctx, a[1]);
    let mut created = false;
    let claimed = ctx.db().write(a[1], now, |slot| -> Result<Vec<Claimed>, CmdError> {
        let s = as_stream_mut(slot.value_mut().ok_or_else(|| no_group(a[1], a[2]))?)?;
        if s.group(a[2]).is_none() {
            return Err(no_group(a[1], a[2]));
        }
        let min_idle = int(a[4]).map_err(|_| CmdError::err("Invalid min-idle-time argument for XCLAIM"))?.max(0) as u64;
        let ids: Vec<StreamId> = a[5..].iter().map_while(|x| StreamId::parse(x, 0, true, false).map(|(id, _)| id)).collect();
        let o = parse_claim_options(&a[5 + ids.len()..], now)?;
        let delivery_time = o.delivery_time.filter(|&t| t >= 0 && t <= now as i64).map_or(now, |t| t as u64);
        let stream = s.clone();
        s.with_group(a[2], |g| {
            let existed = g.consumers.contains_key(&consumer);
            if o.last_id > g.last_id {
                g.last_id = o.last_id;
            }
            let mut out = Vec::new();
            for id in ids {
                let pending = g.pel.get(&id).cloned();
                let Some(entry) = stream.get(id) else {
                    // Gone from the stream: gone from the PEL too.
                    g.ack(id);
                    continue;
                };
                if pending.is_none() && !o.force {
                    continue;
                }
                if let Some(p) = &pending
                    && min_idle > 0
                    && now.saturating_sub(p.delivery_time) < min_idle
                {
                    continue;
                }
                g.consumer_mut(&consumer, now).seen_time = now;
                let p = g.claim(id, &consumer, now);
                p.delivery_time = delivery_time;
                match o.retry_count {
                    Some(n) if n >= 0 => p.delivery_count = n as u64,
                    _ if !o.justid => p.delivery_count = p.delivery_count.wrapping_add(1),
                    _ => {}
                }
                out.push(if o.justid { Claimed::Id(id) } else { Claimed::Entry(entry) });
            }
            created = !existed && g.consumers.contains_key(&consumer);
            out
        })
        .ok_or_else(|| no_group(a[1], a[2]))
    })?;
    consumer_events(ctx, a[1], created);
    reply_claimed(ctx, &claimed);
    Ok(())
}

/// XACK, XCLAIM and XAUTOCLAIM read their stream first: that read counts,
/// and a missing stream is a `keymiss` (then 0, or NOGROUP).
fn read_stream_first(ctx: &Ctx, key: &[u8]) {
    ctx.looked_up(key, ctx.db().contains(key, ctx.now_ms));
}

/// A claim that gave the entries to a consumer the group did not have
/// created it, as Redis announces.
fn consumer_events(ctx: &Ctx, key: &[u8], created: bool) {
    if created {
        ctx.notify(STREAM, "xgroup-createconsumer", key);
    }
}

fn reply_claimed(ctx: &mut Ctx, claimed: &[Claimed]) {
    ctx.out.array(claimed.len());
    for c in claimed {
        match c {
            Claimed::Entry(e) => reply_entry(ctx.out, e),
            Claimed::Id(id) => reply_id(ctx.out, *id),
        }
    }
}

pub fn xautoclaim(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let min_idle = int(a[4]).map_err(|_| CmdError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?.max(0) as u64;
    let start = interval_id(a[5], 0, true)?;
    let (mut count, mut justid) = (100u64, false);
    let mut j = 6;
    while j < a.len() {
        if is(a[j], "count") && j + 1 < a.len() {
            count = match int(a[j + 1]) {
                Ok(n) if (1..=i64::MAX / 16).contains(&n) => n as u64,
                _ => return Err(CmdError::err("COUNT must be > 0")),
            };
            j += 2;
        } else if is(a[j], "justid") {
            justid = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let (now, consumer): (u64, Arc<[u8]>) = (ctx.now_ms, a[3].into());
    read_stream_first(ctx, a[1]);
    let mut created = false;
    let (next, claimed, deleted) = ctx.db().write(a[1], now, |slot| -> Result<(StreamId, Vec<Claimed>, Vec<StreamId>), CmdError> {
        let s = as_stream_mut(slot.value_mut().ok_or_else(|| no_group(a[1], a[2]))?)?;
        if s.group(a[2]).is_none() {
            return Err(no_group(a[1], a[2]));
        }
        let stream = s.clone();
        s.with_group(a[2], |g| {
            let existed = g.consumers.contains_key(&consumer);
            let r = autoclaim(&stream, g, &consumer, start, min_idle, count, justid, now);
            created = !existed && g.consumers.contains_key(&consumer);
            r
        })
        .ok_or_else(|| no_group(a[1], a[2]))
    })?;
    consumer_events(ctx, a[1], created);
    ctx.out.array(3);
    reply_id(ctx.out, next);
    reply_claimed(ctx, &claimed);
    ctx.out.array(deleted.len());
    deleted.iter().for_each(|id| reply_id(ctx.out, *id));
    Ok(())
}

/// XAUTOCLAIM's walk of the PEL from `start`: at most `count` entries
/// claimed or found deleted, after at most ten times as many looked at.
#[allow(clippy::too_many_arguments)]
fn autoclaim(
    s: &StreamValue,
    g: &mut Group,
    consumer: &Arc<[u8]>,
    start: StreamId,
    min_idle: u64,
    mut count: u64,
    justid: bool,
    now: u64,
) -> (StreamId, Vec<Claimed>, Vec<StreamId>) {
    let mut attempts = count.saturating_mul(10);
    let (mut claimed, mut deleted) = (Vec::new(), Vec::new());
    let mut cursor = Some(start);
    while attempts > 0 && count > 0 {
        attempts -= 1;
        let Some((id, p)) = cursor.and_then(|c| g.pel.range(c..).next().map(|(id, p)| (*id, p.clone()))) else {
            cursor = None;
            break;
        };
        cursor = id.incr();
        let Some(entry) = s.get(id) else {
            g.ack(id);
            deleted.push(id);
            count -= 1;
            continue;
        };
        if min_idle > 0 && now.saturating_sub(p.delivery_time) < min_idle {
            continue;
        }
        g.consumer_mut(consumer, now).seen_time = now;
        let p = g.claim(id, consumer, now);
        p.delivery_time = now;
        if !justid {
            p.delivery_count = p.delivery_count.wrapping_add(1);
        }
        claimed.push(if justid { Claimed::Id(id) } else { Claimed::Entry(entry) });
        count -= 1;
    }
    let next = cursor.and_then(|c| g.pel.range(c..).next().map(|(id, _)| *id)).unwrap_or(StreamId::MIN);
    (next, claimed, deleted)
}

pub fn xinfo(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = lower(a[1]);
    if sub == "help" {
        if a.len() != 2 {
            return Err(CmdError::Arity("xinfo|help".into()));
        }
        super::keys::help_reply(
            ctx,
            &[
                "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
                "HELP",
                "    Prints this help.",
            ],
        );
        return Ok(());
    }
    let arity = match sub.as_str() {
        "consumers" => 4,
        "groups" => 3,
        "stream" => -3,
        _ => return Err(CmdError::UnknownSubcommand { cmd: "XINFO".into(), sub: String::from_utf8_lossy(a[1]).into() }),
    };
    if (arity > 0 && a.len() as i64 != arity) || (arity < 0 && (a.len() as i64) < -arity) {
        return Err(CmdError::Arity(format!("xinfo|{sub}")));
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    let out = &mut *ctx.out;
    let r = db.read(a[2], now, ctx.touch, |e| -> CmdResult {
        let s = as_stream(&e.value)?;
        match sub.as_str() {
            "consumers" => info_consumers(out, s, a[2], a[3], now),
            "groups" => {
                info_groups(out, s);
                Ok(())
            }
            _ => info_stream(out, s, &a[3..], a[1]),
        }
    });
    ctx.looked_up(a[2], r.is_some());
    r.unwrap_or(Err(CmdError::NoSuchKey))
}

fn info_consumers(out: &mut crate::protocol::Out, s: &StreamValue, key: &[u8], group: &[u8], now: u64) -> CmdResult {
    let g = s.group(group).ok_or_else(|| no_group_for_key(group, key))?;
    out.array(g.consumers.len());
    for (name, c) in g.consumers.iter() {
        out.map(3);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"pending");
        out.int(c.pending.len() as i64);
        out.bulk(b"idle");
        out.int(now.saturating_sub(c.seen_time) as i64);
    }
    Ok(())
}

fn reply_entries_read(out: &mut crate::protocol::Out, s: &StreamValue, g: &Group) {
    out.bulk(b"entries-read");
    match g.entries_read {
        Some(n) => out.int(n as i64),
        None => out.null(),
    }
    out.bulk(b"lag");
    match s.lag(g) {
        Some(n) => out.int(n),
        None => out.null(),
    }
}

fn info_groups(out: &mut crate::protocol::Out, s: &StreamValue) {
    out.array(s.group_count());
    for (name, g) in s.groups() {
        out.map(6);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"consumers");
        out.int(g.consumers.len() as i64);
        out.bulk(b"pending");
        out.int(g.pel.len() as i64);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id);
        reply_entries_read(out, s, g);
    }
}

/// XINFO STREAM [FULL [COUNT n]].
fn info_stream(out: &mut crate::protocol::Out, s: &StreamValue, opts: &[&[u8]], sub: &[u8]) -> CmdResult {
    let full = !opts.is_empty();
    let mut count = 10usize;
    if full {
        if (opts.len() != 1 && opts.len() != 3) || !is(opts[0], "full") || (opts.len() == 3 && !is(opts[1], "count")) {
            return Err(subcommand_syntax(sub, "XINFO"));
        }
        if opts.len() == 3 {
            let n = int(opts[2])?;
            count = if n < 0 { 10 } else { n as usize };
        }
    }
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.nodes() as i64);
    // Redis counts the nodes of its radix tree; the closest this has is
    // one per listpack node plus the root.
    out.bulk(b"radix-tree-nodes");
    out.int(s.nodes() as i64 + 1);
    out.bulk(b"last-generated-id");
    reply_id(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, s.max_deleted_id);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, s.first_id);
    if !full {
        out.bulk(b"groups");
        out.int(s.group_count() as i64);
        for (name, last) in [("first-entry", false), ("last-entry", true)] {
            out.bulk(name.as_bytes());
            match s.edge(last).and_then(|id| s.get(id)) {
                Some(e) => reply_entry(out, &e),
                None => out.null(),
            }
        }
        return Ok(());
    }
    let limit = if count == 0 { usize::MAX } else { count };
    out.bulk(b"entries");
    // Written as they are read (COUNT 0 means the whole stream): no copy.
    super::streams::reply_range(out, s, StreamId::MIN, StreamId::MAX, false, count as u64);
    out.bulk(b"groups");
    out.array(s.group_count());
    for (name, g) in s.groups() {
        info_full_group(out, s, name, g, limit);
    }
    Ok(())
}

fn info_full_group(out: &mut crate::protocol::Out, s: &StreamValue, name: &[u8], g: &Group, limit: usize) {
    out.map(7);
    out.bulk(b"name");
    out.bulk(name);
    out.bulk(b"last-delivered-id");
    reply_id(out, g.last_id);
    reply_entries_read(out, s, g);
    out.bulk(b"pel-count");
    out.int(g.pel.len() as i64);
    out.bulk(b"pending");
    let pel: Vec<_> = g.pel.iter().take(limit).collect();
    out.array(pel.len());
    for (id, p) in pel {
        out.array(4);
        reply_id(out, *id);
        out.bulk(&p.consumer);
        out.int(p.delivery_time as i64);
        out.int(p.delivery_count as i64);
    }
    out.bulk(b"consumers");
    out.array(g.consumers.len());
    for (cname, c) in g.consumers.iter() {
        out.map(4);
        out.bulk(b"name");
        out.bulk(cname);
        out.bulk(b"seen-time");
        out.int(c.seen_time as i64);
        out.bulk(b"pel-count");
        out.int(c.pending.len() as i64);
        out.bulk(b"pending");
        let ids: Vec<_> = c.pending.iter().take(limit).collect();
        out.array(ids.len());
        for id in ids {
            let p = g.pel.get(id);
            out.array(3);
            reply_id(out, *id);
            out.int(p.map_or(0, |p| p.delivery_time as i64));
            out.int(p.map_or(0, |p| p.delivery_count as i64));
        }
    }
}
