//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is, lower};
use super::keys::help_reply;
use super::{CmdError, CmdResult, Ctx};
use crate::server::client::ClientInfo;
use crate::server::state::ServerState;
use crate::tenancy::Tenant;
use std::sync::Arc;

pub const REDIS_VERSION: &str = "7.0.15";

pub fn ping(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() > 2 {
        return Err(CmdError::Arity("ping".into()));
    }
    if ctx.client.subscriptions() > 0 && !ctx.out.resp3 {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(a.get(1).copied().unwrap_or(b""));
    } else {
        match a.get(1) {
            Some(m) => ctx.out.bulk(m),
            None => ctx.out.simple("PONG"),
        }
    }
    Ok(())
}

pub fn echo(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(a[1]);
    Ok(())
}

/// Checks a username/password pair: `default` against `requirepass` (the
/// admin), any other user name as a tenant id against that tenant's password.
///
/// Failures are counted per tenant (the admin and unknown names share one
/// count); past the budget a check waits for the next second instead of
/// running (`retry_after_ms`), so guesses cannot go at wire speed.
fn check_password(ctx: &mut Ctx, user: &[u8], pass: &[u8]) -> Result<Option<Arc<Tenant>>, CmdError> {
    let tenant =
        (user != b"default").then(|| std::str::from_utf8(user).ok().and_then(|id| ctx.state.tenants.get_tenant(id).ok())).flatten();
    let routed = match &tenant {
        None if user != b"default" => super::cluster::route_to_owner(ctx, user)?,
        Some(t) if t.is_moved() => super::cluster::route_moved(ctx, t)?,
        _ => false,
    };
    if routed {
        // The owner checks the password (and counts failures).
        return Ok(None);
    }
    let throttle = tenant.as_ref().map_or(&ctx.state.auth_throttle, |t| &t.auth_throttle);
    if let Some(ms) = throttle.wait_ms(ctx.now_ms) {
        if !ctx.in_exec {
            ctx.client.retry_after_ms = Some(ms);
        }
        return Err(CmdError::WrongPass);
    }
    let ok = match (&tenant, user == b"default") {
        (_, true) => is_admin_password(ctx.state, pass),
        (Some(t), false) => t.check_password(pass),
        (None, false) => false,
    };
    if !ok {
        throttle.failed(ctx.now_ms);
        return Err(CmdError::WrongPass);
    }
    if tenant.as_ref().is_some_and(|t| t.importing.load(Relaxed)) {
        return Err(CmdError::err("the tenant is being moved to this node; connect to its current one"));
    }
    Ok(tenant)
}

/// Whether `pass` is the admin's: `requirepass` (anything when none is
/// set) or the `[cluster] secret` every node accepts.
pub fn is_admin_password(state: &ServerState, pass: &[u8]) -> bool {
    state.config.read().requirepass.as_ref().is_none_or(|p| p.as_bytes() == pass)
        || state.cluster_secret.as_ref().is_some_and(|s| s.as_bytes() == pass)
}

/// Makes an authenticated identity the connection's: a tenant binds the
/// connection to itself for its lifetime (counted against its connection
/// limit); the admin may not re-authenticate a bound connection.
pub(super) fn bind(ctx: &mut Ctx, who: Option<Arc<Tenant>>) -> CmdResult {
    let bound_to = ctx.client.tenant.as_ref().filter(|_| ctx.client.bound).map(|t| t.id().to_string());
    match (who, bound_to) {
        (Some(t), Some(cur)) if t.id() == cur => {}
        (_, Some(cur)) => return Err(CmdError::err(format!("this connection is bound to tenant '{cur}' for its lifetime"))),
        (None, None) => {}
        (Some(t), None) => {
            t.connect().map_err(|e| CmdError::msg(e.to_string()))?;
            super::cleanup_client(ctx);
            ctx.client.enter(Some(t));
            ctx.client.bound = true;
            ctx.client.info.bound.store(true, Relaxed);
        }
    }
    ctx.client.authenticated = true;
    Ok(())
}

pub fn auth(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (user, pass): (&[u8], &[u8]) = match a.len() {
        2 => (b"default", a[1]),
        3 => (a[1], a[2]),
        _ => return Err(CmdError::Syntax),
    };
    if a.len() == 2 && ctx.state.config.read().requirepass.is_none() {
        return Err(CmdError::err(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    let who = check_password(ctx, user, pass)?;
    if ctx.client.route.is_some() {
        return Ok(());
    }
    bind(ctx, who)?;
    ctx.out.ok();
    Ok(())
}

fn valid_client_name(n: &[u8]) -> bool {
    n.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

pub fn hello(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let mut proto = None;
    let mut i = 1;
    if a.len() > 1 {
        let v = int(a[1]).map_err(|_| CmdError::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::msg("NOPROTO unsupported protocol version"));
        }
        proto = Some(v);
        i = 2;
    }
    let (mut auth, mut name) = (None, None);
    while i < a.len() {
        if is(a[i], "auth") && i + 2 < a.len() {
            auth = Some((a[i + 1], a[i + 2]));
            i += 3;
        } else if is(a[i], "setname") && i + 1 < a.len() {
            name = Some(a[i + 1]);
            i += 2;
        } else {
            return Err(CmdError::err(format!("Syntax error in HELLO option '{}'", String::from_utf8_lossy(a[i]))));
        }
    }
    if let Some((u, p)) = auth {
        let who = check_password(ctx, u, p)?;
        if ctx.client.route.is_some() {
            return Ok(());
        }
        bind(ctx, who)?;
    }
    if !ctx.client.authenticated {
        return Err(CmdError::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(n) = name {
        if !valid_client_name(n) {
            return Err(CmdError::err("Client names cannot contain spaces, newlines or special characters."));
        }
        *ctx.client.info.name.lock() = String::from_utf8_lossy(n).into_owned();
    }
    if let Some(p) = proto {
        ctx.out.resp3 = p == 3;
        ctx.client.info.resp.store(p as usize, Relaxed);
    }
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if out.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(ctx.client.info.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

pub fn select(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = int(a[1])?;
    if n < 0 || n as usize >= super::databases_allowed(ctx) {
        return Err(CmdError::DbIndex);
    }
    ctx.client.set_db(n as usize);
    ctx.out.ok();
    Ok(())
}

pub fn quit(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    ctx.client.close_after_reply = true;
    ctx.out.ok();
    Ok(())
}

pub fn reset(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    ctx.client.info.multi.store(0, Relaxed);
    super::transactions::unwatch_all(ctx);
    super::pubsub::unsubscribe_all(ctx);
    super::tracking::disable(ctx);
    super::introspection::stop_monitoring(ctx);
    if !ctx.client.bound {
        ctx.client.enter(None);
    }
    ctx.client.set_db(0);
    ctx.out.resp3 = false;
    ctx.client.info.resp.store(2, Relaxed);
    ctx.client.info.name.lock().clear();
    ctx.client.info.no_evict.store(false, Relaxed);
    ctx.client.info.no_touch.store(false, Relaxed);
    ctx.client.authenticated = ctx.client.bound || ctx.state.config.read().requirepass.is_none();
    ctx.out.simple("RESET");
    Ok(())
}

/// One line of CLIENT LIST / CLIENT INFO, with Redis's field names.
pub fn client_line(c: &ClientInfo, now_ms: u64) -> String {
    let last = c.last_active_ms.load(Relaxed);
    let idle = now_ms.saturating_sub(last) / 1000;
    let multi = c.multi.load(Relaxed) as i64 - 1;
    let cmd = match c.last_cmd.load(Relaxed) {
        usize::MAX => "NULL",
        i => super::COMMANDS.get(i).map_or("NULL", |s| s.name),
    };
    let mut flags = String::new();
    if c.subs.load(Relaxed) + c.psubs.load(Relaxed) + c.ssubs.load(Relaxed) > 0 {
        flags.push('P');
    }
    if multi >= 0 {
        flags.push('x');
    }
    if c.no_evict.load(Relaxed) {
        flags.push('e');
    }
    if c.no_touch.load(Relaxed) {
        flags.push('T');
    }
    let tracking = c.tracking.load(Relaxed);
    if tracking & crate::server::client::tracking::ON != 0 {
        flags.push('t');
    }
    if tracking & crate::server::client::tracking::BCAST != 0 {
        flags.push('B');
    }
    let redir = if tracking == 0 { -1 } else { c.redirect.load(Relaxed) as i64 };
    if flags.is_empty() {
        flags.push('N');
    }
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        c.name.lock(),
        c.age_secs(),
        idle,
        flags,
        c.db.load(Relaxed),
        c.subs.load(Relaxed),
        c.psubs.load(Relaxed),
        c.ssubs.load(Relaxed),
        multi,
        cmd,
        c.user(),
        redir,
        c.resp.load(Relaxed),
        c.lib_name.lock(),
        c.lib_ver.lock(),
    )
}

/// The clients a CLIENT command may see: all of them from the global
/// context, from a tenant context only the connections bound to that tenant
/// (never an admin's, even one inside the tenant with TENANT.USE).
pub fn visible_clients(ctx: &Ctx) -> Vec<Arc<ClientInfo>> {
    let all = ctx.state.clients.all();
    match &ctx.client.tenant {
        None => all,
        Some(t) => all.into_iter().filter(|c| c.bound.load(Relaxed) && c.tenant.lock().as_deref() == Some(t.id())).collect(),
    }
}

fn on_off(a: &[u8]) -> Result<bool, CmdError> {
    if is(a, "on") {
        Ok(true)
    } else if is(a, "off") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>,",
    "    TYPE normal|pubsub, SKIPME yes|no, MAXAGE <seconds>.",
    "LIST [TYPE normal|pubsub] [ID <id> [<id> ...]] [USER <username>]",
    "    Return information about client connections.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "NO-EVICT (ON|OFF)",
    "    Protect the current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client library name or version.",
    "HELP",
    "    Print this help.",
];

pub fn client(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = lower(a[1]);
    let arity = |n: usize, exact: bool| {
        if (exact && a.len() != n) || a.len() < n { Err(CmdError::Arity(format!("client|{sub}"))) } else { Ok(()) }
    };
    let info = ctx.client.info.clone();
    match sub.as_str() {
        "id" => {
            arity(2, true)?;
            ctx.out.int(info.id as i64);
        }
        "getname" => {
            arity(2, true)?;
            let n = info.name.lock().clone();
            if n.is_empty() { ctx.out.null() } else { ctx.out.bulk(n.as_bytes()) }
        }
        "setname" => {
            arity(3, true)?;
            if !valid_client_name(a[2]) {
                return Err(CmdError::err("Client names cannot contain spaces, newlines or special characters."));
            }
            *info.name.lock() = String::from_utf8_lossy(a[2]).into_owned();
            ctx.out.ok();
        }
        "setinfo" => {
            arity(4, true)?;
            let v = String::from_utf8_lossy(a[3]).into_owned();
            if !valid_client_name(a[3]) {
                return Err(CmdError::err(format!(
                    "{} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(a[2])
                )));
            }
            match lower(a[2]).as_str() {
                "lib-name" => *info.lib_name.lock() = v,
                "lib-ver" => *info.lib_ver.lock() = v,
                _ => {
                    return Err(CmdError::err(format!("Unrecognized option '{}'", String::from_utf8_lossy(a[2]))));
                }
            }
            ctx.out.ok();
        }
        "info" => {
            arity(2, true)?;
            let line = client_line(&info, ctx.now_ms) + "\n";
            ctx.out.verbatim(line.as_bytes());
        }
        "list" => client_list(ctx, a)?,
        "kill" => client_kill(ctx, a)?,
        "no-evict" => {
            arity(3, true)?;
            info.no_evict.store(on_off(a[2])?, Relaxed);
            ctx.out.ok();
        }
        "no-touch" => {
            arity(3, true)?;
            info.no_touch.store(on_off(a[2])?, Relaxed);
            ctx.out.ok();
        }
        "reply" => {
            arity(3, true)?;
            use crate::server::client::ReplyMode;
            match lower(a[2]).as_str() {
                "on" => {
                    ctx.client.reply = ReplyMode::On;
                    ctx.out.ok();
                }
                // Neither replies (see `apply_reply_mode`).
                "off" => ctx.client.reply = ReplyMode::Off,
                "skip" if ctx.client.reply != ReplyMode::Off => ctx.client.reply = ReplyMode::SkipNext,
                "skip" => {}
                _ => return Err(CmdError::Syntax),
            }
        }
        "unblock" => client_unblock(ctx, a)?,
        "pause" => {
            arity(3, false)?;
            if a.len() > 4 {
                return Err(CmdError::err("unknown subcommand or wrong number of arguments for 'PAUSE'. Try CLIENT HELP."));
            }
            client_pause(ctx, a)?;
        }
        "unpause" => {
            arity(2, true)?;
            pause_of(ctx).unpause();
            ctx.out.ok();
        }
        "maint_notifications" => {
            // ON|OFF, then options (Redis's moving-endpoint-type ...), accepted.
            arity(3, false)?;
            ctx.client.maint_notifications = on_off(a[2])?;
            ctx.out.ok();
        }
        "tracking" => {
            arity(3, false)?;
            super::tracking::client_tracking(ctx, a)?;
        }
        "caching" => {
            arity(3, false)?;
            super::tracking::client_caching(ctx, a)?;
        }
        "getredir" => {
            arity(2, true)?;
            super::tracking::client_getredir(ctx)?;
        }
        "trackinginfo" => {
            arity(2, true)?;
            super::tracking::client_trackinginfo(ctx)?;
        }
        "help" => help_reply(ctx, CLIENT_HELP),
        _ => {
            return Err(CmdError::UnknownSubcommand { cmd: "CLIENT".into(), sub: String::from_utf8_lossy(a[1]).into() });
        }
    }
    Ok(())
}

/// The pause a CLIENT PAUSE sets: a tenant's own clients', or for the
/// admin (even inside a tenant with TENANT.USE) everyone's.
fn pause_of<'a>(ctx: &'a Ctx) -> &'a crate::space::pause::Pause {
    match (&ctx.client.tenant, ctx.client.bound) {
        (Some(t), true) => &t.space.pause,
        _ => &ctx.state.global.pause,
    }
}

/// CLIENT PAUSE <timeout ms> [WRITE|ALL].
fn client_pause(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let all = match a.get(3) {
        None => true,
        Some(m) if is(m, "all") => true,
        Some(m) if is(m, "write") => false,
        Some(_) => return Err(CmdError::err("CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let ms = int(a[2]).map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
    let ms = u64::try_from(ms).map_err(|_| CmdError::TimeoutNegative)?;
    pause_of(ctx).pause(ctx.now_ms.saturating_add(ms), all, ctx.now_ms);
    ctx.out.ok();
    Ok(())
}

/// CLIENT UNBLOCK <id> [TIMEOUT|ERROR]: a client of the caller's own
/// (a tenant reaches only its own) blocked in a blocking command stops
/// waiting, answered as by its timeout or with Redis's UNBLOCKED error.
fn client_unblock(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    use crate::server::client::unblock;
    if a.len() < 3 {
        return Err(CmdError::Arity("client|unblock".into()));
    }
    // Redis reads a reason only as the fourth argument, before the id.
    let how = match a.get(3).filter(|_| a.len() == 4) {
        None => unblock::AS_TIMEOUT,
        Some(r) if is(r, "timeout") => unblock::AS_TIMEOUT,
        Some(r) if is(r, "error") => unblock::AS_ERROR,
        Some(_) => return Err(CmdError::err("CLIENT UNBLOCK reason should be TIMEOUT or ERROR")),
    };
    let id = int(a[2])?;
    let target = visible_clients(ctx).into_iter().find(|c| c.id as i64 == id);
    let unblocked = target.is_some_and(|c| {
        c.unblock.compare_exchange(unblock::BLOCKED, how, Relaxed, Relaxed).is_ok() && {
            c.unblocked.notify_one();
            true
        }
    });
    ctx.out.int(unblocked as i64);
    Ok(())
}

fn client_list(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<String> = None;
    let mut user: Option<String> = None;
    let mut i = 2;
    while i < a.len() {
        if is(a[i], "type") && i + 1 < a.len() {
            let t = lower(a[i + 1]);
            if !["normal", "pubsub", "master", "replica", "slave"].contains(&t.as_str()) {
                return Err(CmdError::err(format!("Unknown client type '{}'", String::from_utf8_lossy(a[i + 1]))));
            }
            kind = Some(t);
            i += 2;
        } else if is(a[i], "id") && i + 1 < a.len() {
            let mut v = Vec::new();
            for x in &a[i + 1..] {
                match int(x) {
                    Ok(n) if n > 0 => v.push(n as u64),
                    _ => return Err(CmdError::err("Invalid client ID")),
                }
            }
            ids = Some(v);
            i = a.len();
        } else if is(a[i], "user") && i + 1 < a.len() {
            user = Some(String::from_utf8_lossy(a[i + 1]).into_owned());
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut text = String::new();
    for c in visible_clients(ctx) {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) || user.as_ref().is_some_and(|u| *u != c.user()) {
            continue;
        }
        let pubsub = c.subs.load(Relaxed) + c.psubs.load(Relaxed) + c.ssubs.load(Relaxed) > 0;
        match kind.as_deref() {
            Some("pubsub") if !pubsub => continue,
            Some("normal") if pubsub => continue,
            Some("master") | Some("replica") | Some("slave") => continue,
            _ => {}
        }
        text.push_str(&client_line(&c, ctx.now_ms));
        text.push('\n');
    }
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

fn client_kill(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let me = ctx.client.info.id;
    if a.len() == 3 {
        let addr = String::from_utf8_lossy(a[2]).into_owned();
        let target = visible_clients(ctx).into_iter().find(|c| c.addr.to_string() == addr);
        return match target {
            Some(c) => {
                c.request_kill();
                if c.id == me {
                    ctx.client.close_after_reply = true;
                }
                ctx.out.ok();
                Ok(())
            }
            None => Err(CmdError::err("No such client")),
        };
    }
    if a.len() % 2 == 1 {
        return Err(CmdError::Syntax);
    }
    let (mut id, mut addr, mut laddr, mut kind, mut skipme, mut maxage, mut user) = (None, None, None, None, true, None, None);
    for pair in a[2..].chunks(2) {
        let v = String::from_utf8_lossy(pair[1]).into_owned();
        match lower(pair[0]).as_str() {
            "id" => id = Some(int(pair[1]).ok().filter(|&n| n > 0).ok_or(CmdError::err("client-id should be greater than 0"))? as u64),
            "addr" => addr = Some(v),
            "laddr" => laddr = Some(v),
            "type" => kind = Some(v.to_ascii_lowercase()),
            "user" => {
                if v != "default" && ctx.state.tenants.get_tenant(&v).is_err() {
                    return Err(CmdError::err(format!("No such user '{v}'")));
                }
                user = Some(v)
            }
            "skipme" => {
                skipme = match v.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(CmdError::Syntax),
                }
            }
            "maxage" => maxage = Some(int(pair[1])?),
            _ => return Err(CmdError::Syntax),
        }
    }
    let mut killed = 0;
    for c in visible_clients(ctx) {
        let pubsub = c.subs.load(Relaxed) + c.psubs.load(Relaxed) + c.ssubs.load(Relaxed) > 0;
        let matches = id.is_none_or(|i| c.id == i)
            && addr.as_ref().is_none_or(|x| &c.addr.to_string() == x)
            && laddr.as_ref().is_none_or(|x| &c.laddr.to_string() == x)
            && kind.as_deref().is_none_or(|k| (k == "pubsub") == pubsub && k != "master" && k != "replica")
            && maxage.is_none_or(|m| c.age_secs() as i64 >= m)
            && user.as_ref().is_none_or(|u| &c.user() == u)
            && !(skipme && c.id == me);
        if matches {
            c.request_kill();
            if c.id == me {
                ctx.client.close_after_reply = true;
            }
            killed += 1;
        }
    }
    ctx.out.int(killed);
    Ok(())
}
