//! COMMAND: what the server knows of its commands, as Redis 7.0 reports it.
//!
//! The table (`table::COMMANDS`, `table::SUBCOMMANDS`) says what runs;
//! `redis_meta::META` adds what Redis 7.0 declares about the same commands
//! (key specifications, flags as Redis names them, ACL categories, tips,
//! argument shapes, the version that added it), generated from Redis's
//! command files by `scripts/command_meta.py`. A command Redis does not have
//! (TENANT.*) is reported from its table entry alone. Summaries are
//! Ferrite's own (`summaries`).
//!
//! Tenants see the same replies as everyone: Redis shows every command to
//! every user, whatever it may run, and clients probe COMMAND to learn
//! arities and key positions, not permissions.

use std::sync::LazyLock;

use ahash::AHashMap;

use super::args::lower;
use super::keys::help_reply;
use super::keyspec::{self, KeySpec, kf};
use super::redis_meta::META;
use super::table::{lookup_subcommand, subcommands_of};
use super::{COMMANDS, CmdError, CmdResult, CommandSpec, Ctx, lookup};
use crate::protocol::Out;

pub const ARG_OPTIONAL: u8 = 1;
pub const ARG_MULTIPLE: u8 = 1 << 1;
pub const ARG_MULTIPLE_TOKEN: u8 = 1 << 2;

/// What Redis 7.0 declares about one command or `container|subcommand`.
pub struct Meta {
    pub name: &'static str,
    pub arity: i32,
    pub since: &'static str,
    /// Redis's group name (`sorted-set`, not the table's `sorted_set`).
    pub group: &'static str,
    /// The flags COMMAND INFO shows, in Redis's order (may_replicate and
    /// the other hidden flags left out, movablekeys derived from the specs).
    pub flags: &'static [&'static str],
    /// ACL categories, explicit and implied by the flags, in Redis's order.
    pub acl: &'static [&'static str],
    pub tips: &'static [&'static str],
    pub doc_flags: &'static [&'static str],
    pub deprecated_since: Option<&'static str>,
    pub keys: &'static [KeySpec],
    /// Redis has a key function for it (used where the specs cannot say).
    pub getkeys: bool,
    pub args: &'static [Arg],
}

/// One argument of COMMAND DOCS.
pub struct Arg {
    pub name: &'static str,
    /// string, integer, double, key, pattern, unix-time, pure-token, oneof, block.
    pub kind: &'static str,
    pub key_spec: i32,
    pub token: Option<&'static str>,
    pub since: Option<&'static str>,
    pub deprecated_since: Option<&'static str>,
    pub flags: u8,
    pub args: &'static [Arg],
}

static META_INDEX: LazyLock<AHashMap<&'static str, &'static Meta>> = LazyLock::new(|| META.iter().map(|m| (m.name, m)).collect());

/// Redis's declaration of a command or `container|subcommand`.
pub fn meta(name: &str) -> Option<&'static Meta> {
    META_INDEX.get(name).copied()
}

/// The declaration that applies to a call: a container's subcommand's
/// (argv[1]), else the command's own.
pub fn meta_for(spec: &CommandSpec, argv: &[&[u8]]) -> Option<&'static Meta> {
    if argv.len() >= 2
        && let Some(sub) = lookup_subcommand(spec.name, argv[1])
    {
        return meta(sub.name);
    }
    meta(spec.name)
}

fn is_container(spec: &CommandSpec) -> bool {
    subcommands_of(spec.name).next().is_some()
}

/// A name as COMMAND INFO and DOCS take it: `get`, or `client|list`.
fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        None => lookup(name).map(|(_, s)| s),
        Some(i) => {
            let (_, parent) = lookup(&name[..i])?;
            lookup_subcommand(parent.name, &name[i + 1..])
        }
    }
}

/// The entry a command line names (Redis's `lookupCommand`): a container
/// with a second argument names its subcommand, or nothing.
fn find_call(argv: &[&[u8]]) -> Option<&'static CommandSpec> {
    let (_, spec) = lookup(argv[0])?;
    if argv.len() == 1 || !is_container(spec) {
        return Some(spec);
    }
    lookup_subcommand(spec.name, argv[1])
}

pub fn command(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() == 1 {
        ctx.out.array(COMMANDS.len());
        COMMANDS.iter().for_each(|c| info(ctx.out, c));
        return Ok(());
    }
    let sub = lower(a[1]);
    let arity = |n: usize, exact: bool| {
        if (exact && a.len() != n) || a.len() < n { Err(CmdError::Arity(format!("command|{sub}"))) } else { Ok(()) }
    };
    match sub.as_str() {
        "count" => {
            arity(2, true)?;
            ctx.out.int(COMMANDS.len() as i64);
        }
        "list" => list(ctx, a)?,
        "info" if a.len() == 2 => {
            ctx.out.array(COMMANDS.len());
            COMMANDS.iter().for_each(|c| info(ctx.out, c));
        }
        "info" => {
            ctx.out.array(a.len() - 2);
            for n in &a[2..] {
                match find(n) {
                    Some(spec) => info(ctx.out, spec),
                    None => ctx.out.null(),
                }
            }
        }
        "docs" => {
            let specs: Vec<&CommandSpec> =
                if a.len() == 2 { COMMANDS.iter().collect() } else { a[2..].iter().filter_map(|n| find(n)).collect() };
            ctx.out.map(specs.len());
            for s in specs {
                ctx.out.bulk(s.name.as_bytes());
                docs(ctx.out, s);
            }
        }
        "getkeys" | "getkeysandflags" => {
            arity(4, false)?;
            getkeys(ctx, &a[2..], sub == "getkeysandflags")?;
        }
        "help" => {
            arity(2, true)?;
            help_reply(ctx, HELP);
        }
        _ => return Err(CmdError::UnknownSubcommand { cmd: "COMMAND".into(), sub: String::from_utf8_lossy(a[1]).into() }),
    }
    Ok(())
}

const HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the number of commands (subcommands not counted).",
    "GETKEYS <full-command>",
    "    Return the keys of a full command line.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys of a full command line and how each is used.",
    "INFO [<command-name> ...]",
    "    Return details about the given commands, or all of them.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Return the names of all commands and subcommands, or of those that match.",
    "DOCS [<command-name> ...]",
    "    Return documentation about the given commands, or all of them.",
    "HELP",
    "    Print this help.",
];

/// The ten fields of COMMAND INFO for one entry.
fn info(out: &mut Out, spec: &CommandSpec) {
    let m = meta(spec.name);
    out.array(10);
    out.bulk(spec.name.as_bytes());
    out.int(spec.arity as i64);
    match m {
        Some(m) => statuses(out, m.flags.iter().copied()),
        None => statuses(out, spec.flag_names().into_iter()),
    }
    let (first, last, step) = match m {
        Some(m) => keyspec::legacy_range(m.keys).0,
        None => spec.reported_keys(),
    };
    out.int(first as i64);
    out.int(last as i64);
    out.int(step as i64);
    match m {
        Some(m) => statuses(out, m.acl.iter().copied()),
        None => {
            let cats = super::server::acl_categories(spec);
            statuses(out, cats.iter().map(String::as_str));
        }
    }
    let (tips, keys) = m.map_or((&[][..], &[][..]), |m| (m.tips, m.keys));
    out.set(tips.len());
    tips.iter().for_each(|t| out.bulk(t.as_bytes()));
    out.set(keys.len());
    keys.iter().for_each(|k| key_spec(out, k));
    let subs: Vec<&CommandSpec> = subcommands_of(spec.name).collect();
    if is_container(spec) {
        out.array(subs.len());
    } else {
        out.set(0);
    }
    subs.into_iter().for_each(|s| info(out, s));
}

fn statuses<'a>(out: &mut Out, items: impl ExactSizeIterator<Item = &'a str>) {
    out.set(items.len());
    items.for_each(|s| out.simple(s));
}

fn key_flags(out: &mut Out, flags: u16) {
    let names: Vec<&str> = kf::NAMES.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect();
    statuses(out, names.into_iter());
}

fn key_spec(out: &mut Out, k: &KeySpec) {
    use keyspec::{Begin, Find};
    out.map(3);
    out.bulk(b"flags");
    key_flags(out, k.flags);
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    match k.begin {
        Begin::Index(i) => {
            out.bulk(b"index");
            out.bulk(b"spec");
            out.map(1);
            out.bulk(b"index");
            out.int(i as i64);
        }
        Begin::Keyword(word, from) => {
            out.bulk(b"keyword");
            out.bulk(b"spec");
            out.map(2);
            out.bulk(b"keyword");
            out.bulk(word.as_bytes());
            out.bulk(b"startfrom");
            out.int(from as i64);
        }
        Begin::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    let fields = match k.find {
        Find::Range(last, step, limit) => {
            out.bulk(b"range");
            [("lastkey", last), ("keystep", step), ("limit", limit)]
        }
        Find::Keynum(idx, first, step) => {
            out.bulk(b"keynum");
            [("keynumidx", idx), ("firstkey", first), ("keystep", step)]
        }
        Find::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
            return;
        }
    };
    out.bulk(b"spec");
    out.map(3);
    for (name, v) in fields {
        out.bulk(name.as_bytes());
        out.int(v as i64);
    }
}

/// One command's COMMAND DOCS map.
fn docs(out: &mut Out, spec: &CommandSpec) {
    let m = meta(spec.name);
    let summary = super::summaries::summary(spec.name);
    let subs: Vec<&CommandSpec> = subcommands_of(spec.name).collect();
    let args = m.map_or(&[][..], |m| m.args);
    let doc_flags = m.map_or(&[][..], |m| m.doc_flags);
    let deprecated = m.and_then(|m| m.deprecated_since);
    let len = 1
        + summary.is_some() as usize
        + m.is_some() as usize
        + !doc_flags.is_empty() as usize
        + deprecated.is_some() as usize
        + !args.is_empty() as usize
        + !subs.is_empty() as usize;
    out.map(len);
    if let Some(s) = summary {
        out.bulk(b"summary");
        out.bulk(s.as_bytes());
    }
    if let Some(m) = m {
        out.bulk(b"since");
        out.bulk(m.since.as_bytes());
    }
    out.bulk(b"group");
    out.bulk(m.map_or(spec.group.replace('_', "-"), |m| m.group.to_string()).as_bytes());
    if !doc_flags.is_empty() {
        out.bulk(b"doc_flags");
        statuses(out, doc_flags.iter().copied());
    }
    if let Some(d) = deprecated {
        out.bulk(b"deprecated_since");
        out.bulk(d.as_bytes());
    }
    if !args.is_empty() {
        out.bulk(b"arguments");
        arguments(out, args);
    }
    if !subs.is_empty() {
        out.bulk(b"subcommands");
        out.map(subs.len());
        for s in subs {
            out.bulk(s.name.as_bytes());
            docs(out, s);
        }
    }
}

fn arguments(out: &mut Out, args: &[Arg]) {
    out.array(args.len());
    for a in args {
        let nested = matches!(a.kind, "oneof" | "block");
        let len = 2
            + (a.key_spec >= 0) as usize
            + a.token.is_some() as usize
            + a.since.is_some() as usize
            + a.deprecated_since.is_some() as usize
            + (a.flags != 0) as usize
            + nested as usize;
        out.map(len);
        out.bulk(b"name");
        out.bulk(a.name.as_bytes());
        out.bulk(b"type");
        out.bulk(a.kind.as_bytes());
        if a.key_spec >= 0 {
            out.bulk(b"key_spec_index");
            out.int(a.key_spec as i64);
        }
        for (field, v) in [("token", a.token), ("since", a.since), ("deprecated_since", a.deprecated_since)] {
            if let Some(v) = v {
                out.bulk(field.as_bytes());
                out.bulk(v.as_bytes());
            }
        }
        if a.flags != 0 {
            out.bulk(b"flags");
            let names = [(ARG_OPTIONAL, "optional"), (ARG_MULTIPLE, "multiple"), (ARG_MULTIPLE_TOKEN, "multiple_token")];
            let set: Vec<&str> = names.iter().filter(|(f, _)| a.flags & f != 0).map(|(_, n)| *n).collect();
            statuses(out, set.into_iter());
        }
        if nested {
            out.bulk(b"arguments");
            arguments(out, a.args);
        }
    }
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS <command line>, with Redis's errors.
fn getkeys(ctx: &mut Ctx, argv: &[&[u8]], with_flags: bool) -> CmdResult {
    let Some(spec) = find_call(argv) else { return Err(CmdError::err("Invalid command specified")) };
    let m = meta(spec.name);
    let may_have_keys = match m {
        Some(m) => keyspec::has_keys(m),
        None => spec.first_key > 0 || spec.has(super::flags::MOVABLEKEYS),
    };
    if !may_have_keys {
        return Err(CmdError::err("The command has no key arguments"));
    }
    if !spec.arity_ok(argv.len()) {
        return Err(CmdError::err("Invalid number of arguments specified for command"));
    }
    let keys: keyspec::Keys = match m {
        Some(m) => keyspec::keys(m, argv),
        None => spec.key_indexes(argv.len()).map(|pos| keyspec::Key { pos, flags: 0 }).collect(),
    };
    if keys.is_empty() {
        if m.is_some_and(|m| m.flags.contains(&"no_mandatory_keys")) {
            ctx.out.array(0);
            return Ok(());
        }
        return Err(CmdError::err("Invalid arguments specified for command"));
    }
    ctx.out.array(keys.len());
    for k in keys {
        if with_flags {
            ctx.out.array(2);
            ctx.out.bulk(argv[k.pos]);
            key_flags(ctx.out, k.flags);
        } else {
            ctx.out.bulk(argv[k.pos]);
        }
    }
    Ok(())
}

/// COMMAND LIST [FILTERBY MODULE m | ACLCAT c | PATTERN p]: every command
/// followed by its subcommands, or those the filter keeps.
fn list(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    enum Filter<'a> {
        All,
        Module,
        AclCat(String),
        Pattern(&'a [u8]),
    }
    let mut filter = Filter::All;
    let mut i = 2;
    while i < a.len() {
        if a[i].eq_ignore_ascii_case(b"filterby") && a.len() - 1 - i == 2 {
            filter = match lower(a[i + 1]).as_str() {
                "module" => Filter::Module,
                "aclcat" => Filter::AclCat(format!("@{}", lower(a[i + 2]))),
                "pattern" => Filter::Pattern(a[i + 2]),
                _ => return Err(CmdError::Syntax),
            };
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let keep = |spec: &CommandSpec| match &filter {
        Filter::All => true,
        // Ferrite has no modules.
        Filter::Module => false,
        Filter::AclCat(cat) => in_category(spec, cat),
        Filter::Pattern(p) => crate::store::glob::matches(p, spec.name.as_bytes(), true),
    };
    let names: Vec<&[u8]> = entries().filter(|c| keep(c)).map(|c| c.name.as_bytes()).collect();
    ctx.out.bulks(names.into_iter());
    Ok(())
}

/// Every table entry, each container followed by its subcommands.
pub fn entries() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS.iter().flat_map(|c| std::iter::once(c).chain(subcommands_of(c.name)))
}

/// Whether an entry is in ACL category `cat` (`@read`, ...): Redis's
/// categories where Redis has the command, else the table's.
pub fn in_category(spec: &CommandSpec, cat: &str) -> bool {
    match meta(spec.name) {
        Some(m) => m.acl.contains(&cat),
        None => super::server::acl_categories(spec).iter().any(|c| c == cat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::flags::{MOVABLEKEYS, NOT_KEY};
    use crate::commands::table::SUBCOMMANDS;

    /// Containers whose table entry keeps the key position of their
    /// subcommands for dispatch (MEMORY USAGE, OBJECT, XGROUP, XINFO take
    /// their key at 2); Redis reports the container itself as keyless.
    const CONTAINERS_WITH_KEYS: &[&str] = &["memory", "object", "xgroup", "xinfo"];

    #[test]
    fn every_entry_with_keys_has_key_specs() {
        for spec in COMMANDS.iter().chain(SUBCOMMANDS) {
            let Some(m) = meta(spec.name) else {
                // Only Ferrite's own commands (and additions) lack Redis's declaration.
                assert!(
                    spec.group == "tenancy" || matches!(spec.name, "client|no-touch" | "client|setinfo"),
                    "{} has no metadata",
                    spec.name
                );
                assert_eq!(spec.first_key, 0, "{}", spec.name);
                continue;
            };
            assert_eq!(m.arity, spec.arity, "{}: arity", spec.name);
            let ((first, last, step), movable) = keyspec::legacy_range(m.keys);
            if spec.has(NOT_KEY) {
                assert_eq!((first, last, step), spec.reported_keys(), "{}", spec.name);
                assert!(m.keys.iter().all(|k| k.flags & kf::NOT_KEY != 0), "{}", spec.name);
            } else if CONTAINERS_WITH_KEYS.contains(&spec.name) {
                assert!(m.keys.is_empty());
                assert!(subcommands_of(spec.name).any(|s| s.first_key == spec.first_key), "{}", spec.name);
            } else {
                assert_eq!((first, last, step), (spec.first_key, spec.last_key, spec.step), "{}: legacy key range", spec.name);
                // SORT_RO: Redis marks it movable (its spec is incomplete: BY and
                // GET patterns name keys); the table keeps it a one-key command, so
                // an admin's `__tenant:` SORT_RO is still addressed.
                if spec.name != "sort_ro" {
                    assert_eq!(movable, spec.has(MOVABLEKEYS), "{}: movablekeys", spec.name);
                }
                assert_eq!(movable, m.flags.contains(&"movablekeys"), "{}", spec.name);
            }
            if (spec.first_key > 0 || spec.has(MOVABLEKEYS)) && !CONTAINERS_WITH_KEYS.contains(&spec.name) {
                assert!(!m.keys.is_empty(), "{} takes keys but has no key specs", spec.name);
                assert!(keyspec::has_keys(m), "{}", spec.name);
            }
        }
    }

    #[test]
    fn every_entry_has_a_summary_and_metadata_names_an_entry() {
        for spec in COMMANDS.iter().chain(SUBCOMMANDS) {
            assert!(super::super::summaries::summary(spec.name).is_some(), "{} has no summary", spec.name);
        }
        for m in META {
            assert!(find(m.name.as_bytes()).is_some(), "{} is not in the table", m.name);
        }
        for (n, _) in super::super::summaries::SUMMARIES {
            assert!(find(n.as_bytes()).is_some(), "summary of unknown {n}");
        }
    }

    fn argv(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(str::as_bytes).collect()
    }

    /// For commands whose keys sit at fixed places, the specs give exactly
    /// the table's legacy positions, which dispatch uses.
    #[test]
    fn positions_agree_with_the_table() {
        let samples = [
            "get k",
            "set k v EX 10",
            "mset a 1 b 2 c 3",
            "del a b c",
            "blpop a b c 0",
            "lmove a b LEFT RIGHT",
            "bitop AND d a b c",
            "rename a b",
            "pfdebug GETREG k",
            "watch a b",
            "memory usage k",
            "object encoding k",
            "xinfo stream s FULL",
            "copy a b DB 1",
            "geosearchstore d s FROMMEMBER m BYRADIUS 1 km",
        ];
        for line in samples {
            let a = argv(line);
            let (_, spec) = lookup(a[0]).unwrap();
            let from_specs: Vec<usize> = keyspec::positions(spec, &a).into_vec();
            let legacy: Vec<usize> = spec.key_indexes(a.len()).collect();
            assert_eq!(from_specs, legacy, "{line}");
        }
    }

    #[test]
    fn names_and_calls_resolve() {
        assert_eq!(find(b"CLIENT|LIST").map(|s| s.name), Some("client|list"));
        assert_eq!(find(b"client").map(|s| s.name), Some("client"));
        assert!(find(b"get|x").is_none());
        assert_eq!(find_call(&argv("client list")).map(|s| s.name), Some("client|list"));
        assert!(find_call(&argv("client nosuch")).is_none());
        assert_eq!(find_call(&argv("get k")).map(|s| s.name), Some("get"));
    }
}
