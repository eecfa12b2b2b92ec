//! SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE / PUNSUBSCRIBE / PUBLISH / PUBSUB,
//! and sharded pub/sub (SSUBSCRIBE / SUNSUBSCRIBE / SPUBLISH) as Redis 7.0
//! runs it outside a cluster: shard channels are a namespace of their own
//! in the client's space, never matched by patterns, never sent keyspace
//! events.

use crate::space::pubsub::Delivery;
use std::sync::atomic::Ordering::Relaxed;

use super::args::lower;
use super::{CmdError, CmdResult, Ctx};
use crate::server::client::ClientState;
use crate::space::pubsub::{PubSub, Subscriber};
use std::collections::HashSet;

/// A (un)subscription's confirmation. Its count is Redis's: channels and
/// patterns for the ordinary kinds, shard channels alone for the sharded.
fn confirm(ctx: &mut Ctx, kind: &str, name: Option<&[u8]>) {
    let c = &*ctx.client;
    let n = if matches!(kind, "ssubscribe" | "sunsubscribe") { c.shard_channels.len() } else { c.channels.len() + c.patterns.len() };
    c.info.subs.store(c.channels.len(), Relaxed);
    c.info.psubs.store(c.patterns.len(), Relaxed);
    c.info.ssubs.store(c.shard_channels.len(), Relaxed);
    ctx.out.push(3);
    ctx.out.bulk(kind.as_bytes());
    ctx.out.bulk_opt(name);
    ctx.out.int(n as i64);
}

/// What a subscription holds: its name in the client's set and in the
/// space's registry, and their entries.
fn subscription_bytes(name: &[u8]) -> u64 {
    2 * name.len() as u64 + 48
}

/// A tenant's subscriptions are memory it holds (see `Ctx::hold`).
fn admit_subscriptions(ctx: &mut Ctx, names: &[&[u8]]) -> CmdResult {
    ctx.hold(names.iter().map(|n| subscription_bytes(n)).sum())
}

/// The three kinds of subscription: the client's set of names, the
/// registry's calls, and the words of the confirmations.
#[derive(Clone, Copy)]
enum Family {
    Channel,
    Pattern,
    Shard,
}

impl Family {
    fn names(self, c: &mut ClientState) -> &mut HashSet<Vec<u8>> {
        match self {
            Family::Channel => &mut c.channels,
            Family::Pattern => &mut c.patterns,
            Family::Shard => &mut c.shard_channels,
        }
    }

    fn register(self, ps: &PubSub, name: &[u8], sub: Subscriber) {
        match self {
            Family::Channel => ps.subscribe(name, sub),
            Family::Pattern => ps.psubscribe(name, sub),
            Family::Shard => ps.ssubscribe(name, sub),
        }
    }

    fn unregister(self, ps: &PubSub, name: &[u8], id: u64) {
        match self {
            Family::Channel => ps.unsubscribe(name, id),
            Family::Pattern => ps.punsubscribe(name, id),
            Family::Shard => ps.sunsubscribe(name, id),
        }
    }

    /// (subscribe, unsubscribe) as the confirmations name them.
    fn verbs(self) -> (&'static str, &'static str) {
        match self {
            Family::Channel => ("subscribe", "unsubscribe"),
            Family::Pattern => ("psubscribe", "punsubscribe"),
            Family::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

fn subscribe_to(ctx: &mut Ctx, family: Family, names: &[&[u8]]) -> CmdResult {
    admit_subscriptions(ctx, names)?;
    for n in names {
        if family.names(ctx.client).insert(n.to_vec()) {
            family.register(&ctx.space().pubsub, n, ctx.subscriber());
        }
        confirm(ctx, family.verbs().0, Some(n));
    }
    Ok(())
}

/// The names given, or with none every one of the family's.
fn unsubscribe_from(ctx: &mut Ctx, family: Family, a: &[&[u8]]) -> CmdResult {
    let names: Vec<Vec<u8>> =
        if a.len() > 1 { a[1..].iter().map(|c| c.to_vec()).collect() } else { family.names(ctx.client).iter().cloned().collect() };
    let verb = family.verbs().1;
    if names.is_empty() {
        confirm(ctx, verb, None);
    }
    for n in names {
        if family.names(ctx.client).remove(&n) {
            family.unregister(&ctx.space().pubsub, &n, ctx.client.id());
        }
        confirm(ctx, verb, Some(&n));
    }
    Ok(())
}

pub fn subscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    subscribe_to(ctx, Family::Channel, &a[1..])
}

pub fn psubscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    subscribe_to(ctx, Family::Pattern, &a[1..])
}

pub fn unsubscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    unsubscribe_from(ctx, Family::Channel, a)
}

pub fn punsubscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    unsubscribe_from(ctx, Family::Pattern, a)
}

/// Drops every subscription of a client (on RESET and disconnect).
pub fn unsubscribe_all(ctx: &mut Ctx) {
    let (space, id) = (ctx.space(), ctx.client.info.id);
    for ch in ctx.client.channels.drain() {
        space.pubsub.unsubscribe(&ch, id);
    }
    for p in ctx.client.patterns.drain() {
        space.pubsub.punsubscribe(&p, id);
    }
    for ch in ctx.client.shard_channels.drain() {
        space.pubsub.sunsubscribe(&ch, id);
    }
    ctx.client.info.subs.store(0, Relaxed);
    ctx.client.info.psubs.store(0, Relaxed);
    ctx.client.info.ssubs.store(0, Relaxed);
}

pub fn ssubscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    // Redis refuses it inside EXEC (a DENY BLOCKING client), unlike SUBSCRIBE.
    if ctx.in_exec {
        return Err(CmdError::err("SSUBSCRIBE isn't allowed for a DENY BLOCKING client"));
    }
    subscribe_to(ctx, Family::Shard, &a[1..])
}

pub fn sunsubscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    unsubscribe_from(ctx, Family::Shard, a)
}

pub fn spublish(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let how = Delivery { limit: ctx.state.output_limits.pubsub(), now_ms: ctx.now_ms };
    let n = ctx.space().pubsub.spublish(a[1], a[2], how);
    ctx.out.int(n as i64);
    Ok(())
}

pub fn publish(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let how = Delivery { limit: ctx.state.output_limits.pubsub(), now_ms: ctx.now_ms };
    let n = ctx.space().pubsub.publish(a[1], a[2], how);
    ctx.out.int(n as i64);
    Ok(())
}

pub fn pubsub(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = lower(a[1]);
    match sub.as_str() {
        "channels" if a.len() <= 3 => {
            let chans = ctx.space().pubsub.channels(a.get(2).copied());
            ctx.out.bulks(chans.iter().map(|c| &c[..]));
        }
        "numsub" => {
            ctx.out.array(2 * (a.len() - 2)); // a flat array in RESP3 too, as Redis's
            for ch in &a[2..] {
                ctx.out.bulk(ch);
                ctx.out.int(ctx.space().pubsub.numsub(ch) as i64);
            }
        }
        "numpat" if a.len() == 2 => ctx.out.int(ctx.space().pubsub.numpat() as i64),
        "shardchannels" if a.len() <= 3 => {
            let chans = ctx.space().pubsub.shard_channels(a.get(2).copied());
            ctx.out.bulks(chans.iter().map(|c| &c[..]));
        }
        "shardnumsub" => {
            ctx.out.array(2 * (a.len() - 2)); // a flat array in RESP3 too, as Redis's
            for ch in &a[2..] {
                ctx.out.bulk(ch);
                ctx.out.int(ctx.space().pubsub.shard_numsub(ch) as i64);
            }
        }
        "numpat" => return Err(CmdError::Arity(format!("pubsub|{sub}"))),
        // Their arity (-2) passes; Redis's handler then refuses the rest.
        "channels" | "shardchannels" => {
            return Err(CmdError::err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(a[1])
            )));
        }
        "help" => super::keys::help_reply(
            ctx,
            &[
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Prints this help.",
            ],
        ),
        _ => {
            return Err(CmdError::UnknownSubcommand { cmd: "PUBSUB".into(), sub: String::from_utf8_lossy(a[1]).into() });
        }
    }
    Ok(())
}
