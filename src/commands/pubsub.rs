//! SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE / PUNSUBSCRIBE / PUBLISH / PUBSUB.

use crate::space::pubsub::Delivery;
use std::sync::atomic::Ordering::Relaxed;

use super::args::lower;
use super::{CmdError, CmdResult, Ctx};
use crate::space::pubsub::Subscriber;

fn subscriber(ctx: &Ctx) -> Subscriber {
    let info = ctx.client.info.clone();
    Subscriber { id: ctx.client.id(), tx: ctx.client.msg_tx.clone(), kill: std::sync::Arc::new(move || info.request_kill()) }
}

fn confirm(ctx: &mut Ctx, kind: &str, name: Option<&[u8]>) {
    let n = ctx.client.subscriptions();
    ctx.client.info.subs.store(ctx.client.channels.len(), Relaxed);
    ctx.client.info.psubs.store(ctx.client.patterns.len(), Relaxed);
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

pub fn subscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    admit_subscriptions(ctx, &a[1..])?;
    for ch in &a[1..] {
        if ctx.client.channels.insert(ch.to_vec()) {
            ctx.space().pubsub.subscribe(ch, subscriber(ctx));
        }
        confirm(ctx, "subscribe", Some(ch));
    }
    Ok(())
}

pub fn psubscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    admit_subscriptions(ctx, &a[1..])?;
    for p in &a[1..] {
        if ctx.client.patterns.insert(p.to_vec()) {
            ctx.space().pubsub.psubscribe(p, subscriber(ctx));
        }
        confirm(ctx, "psubscribe", Some(p));
    }
    Ok(())
}

pub fn unsubscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let names: Vec<Vec<u8>> =
        if a.len() > 1 { a[1..].iter().map(|c| c.to_vec()).collect() } else { ctx.client.channels.iter().cloned().collect() };
    if names.is_empty() {
        confirm(ctx, "unsubscribe", None);
    }
    for ch in names {
        if ctx.client.channels.remove(&ch) {
            ctx.space().pubsub.unsubscribe(&ch, ctx.client.id());
        }
        confirm(ctx, "unsubscribe", Some(&ch));
    }
    Ok(())
}

pub fn punsubscribe(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let names: Vec<Vec<u8>> =
        if a.len() > 1 { a[1..].iter().map(|c| c.to_vec()).collect() } else { ctx.client.patterns.iter().cloned().collect() };
    if names.is_empty() {
        confirm(ctx, "punsubscribe", None);
    }
    for p in names {
        if ctx.client.patterns.remove(&p) {
            ctx.space().pubsub.punsubscribe(&p, ctx.client.id());
        }
        confirm(ctx, "punsubscribe", Some(&p));
    }
    Ok(())
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
    ctx.client.info.subs.store(0, Relaxed);
    ctx.client.info.psubs.store(0, Relaxed);
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
            ctx.out.map(a.len() - 2);
            for ch in &a[2..] {
                ctx.out.bulk(ch);
                ctx.out.int(ctx.space().pubsub.numsub(ch) as i64);
            }
        }
        "numpat" if a.len() == 2 => ctx.out.int(ctx.space().pubsub.numpat() as i64),
        "channels" | "numpat" => return Err(CmdError::Arity(format!("pubsub|{sub}"))),
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
                "HELP",
                "    Print this help.",
            ],
        ),
        _ => {
            return Err(CmdError::UnknownSubcommand { cmd: "PUBSUB".into(), sub: String::from_utf8_lossy(a[1]).into() });
        }
    }
    Ok(())
}
