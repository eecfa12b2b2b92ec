#!/usr/bin/env python3
"""Generates src/commands/redis_meta.rs from Redis 7.0.15's command JSON files.

Only interface facts are taken: arity, since, group, command and doc flags,
ACL categories, tips, key specifications (without their notes) and argument
shapes (names, types, tokens, flags, since). No summaries, complexity,
history or notes: COMMAND DOCS's summaries are Ferrite's own
(src/commands/command.rs).

Usage: scripts/command_meta.py [GIT_DIR] > src/commands/redis_meta.rs
GIT_DIR defaults to /work/.mirror/redis+redis/repo (a clone of redis/redis).
"""
import json, re, subprocess, sys

GIT = ["git", "--git-dir=" + (sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/redis+redis/repo")]
TAG = "7.0.15"
HIDDEN = {"MAY_REPLICATE", "SENTINEL", "ONLY_SENTINEL", "PROTECTED", "TOUCHES_ARBITRARY_KEYS"}
FLAG_ORDER = ["write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking", "loading", "stale",
              "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth", "no_mandatory_keys", "no_async_loading",
              "no_multi", "movablekeys", "allow_busy"]
ACL_ORDER = ["keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap", "hyperloglog", "geo",
             "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous", "connection", "transaction", "scripting"]
# Subcommands Ferrite's container commands implement.
SUBCOMMANDS = {
    "acl": ["cat", "help", "list", "users", "whoami"],
    "client": ["caching", "getname", "getredir", "help", "id", "info", "kill", "list", "no-evict", "pause", "reply",
               "setname", "tracking", "trackinginfo", "unblock", "unpause"],
    "command": ["count", "docs", "getkeys", "getkeysandflags", "help", "info", "list"],
    "config": ["get", "help", "resetstat", "rewrite", "set"],
    "function": ["delete", "dump", "flush", "help", "kill", "list", "load", "restore", "stats"],
    "latency": ["doctor", "help", "histogram", "history", "latest", "reset"],
    "memory": ["doctor", "help", "malloc-stats", "purge", "stats", "usage"],
    "object": ["encoding", "freq", "help", "idletime", "refcount"],
    "pubsub": ["channels", "help", "numpat", "numsub", "shardchannels", "shardnumsub"],
    "script": ["debug", "exists", "flush", "help", "kill", "load"],
    "slowlog": ["get", "help", "len", "reset"],
    "xgroup": ["create", "createconsumer", "delconsumer", "destroy", "help", "setid"],
    "xinfo": ["consumers", "groups", "help", "stream"],
}


def git(*a):
    return subprocess.run(GIT + list(a), capture_output=True, text=True, check=True).stdout


def load():
    cmds, subs = {}, {}
    for f in git("ls-tree", "--name-only", TAG, "src/commands/").split():
        for k, v in json.loads(git("show", f"{TAG}:{f}")).items():
            if "container" in v:
                subs[(v["container"].lower(), k.lower())] = v
            else:
                cmds[k.lower()] = v
    return cmds, subs


def s(x):
    return "None" if x is None else 'Some("%s")' % x


def strs(xs):
    return "&[" + ", ".join('"%s"' % x for x in xs) + "]"


def key_spec(k):
    flags = " | ".join(k.get("flags", [])) or "0"
    bs, fk = k["begin_search"], k["find_keys"]
    if "index" in bs:
        b = "Index(%d)" % bs["index"]["pos"]
    elif "keyword" in bs:
        b = 'Keyword("%s", %d)' % (bs["keyword"]["keyword"], bs["keyword"]["startfrom"])
    else:
        b = "Begin::Unknown"
    if "range" in fk:
        r = fk["range"]
        f = "Range(%d, %d, %d)" % (r["lastkey"], r["step"], r["limit"])
    elif "keynum" in fk:
        r = fk["keynum"]
        f = "Keynum(%d, %d, %d)" % (r["keynumidx"], r["firstkey"], r["step"])
    else:
        f = "Find::Unknown"
    return "ks(%s, %s, %s)" % (flags, b, f)


def arg(a, depth):
    fl = [n for n, key in (("OPTIONAL", "optional"), ("MULTIPLE", "multiple"), ("MULTIPLE_TOKEN", "multiple_token")) if a.get(key)]
    sub = "&[]"
    if a["type"] in ("oneof", "block"):
        sub = args(a["arguments"], depth + 1)
    tok = a.get("token")
    return 'Arg { name: "%s", kind: "%s", key_spec: %d, token: %s, since: %s, deprecated_since: %s, flags: %s, args: %s }' % (
        a["name"].lower(), a["type"], a.get("key_spec_index", -1), s(tok.upper() if tok else None), s(a.get("since")),
        s(a.get("deprecated_since")), " | ".join("ARG_" + f for f in fl) or "0", sub)


def args(xs, depth=0):
    if not xs:
        return "&[]"
    pad = "    " * (depth + 3)
    return "&[\n" + "".join(pad + arg(a, depth) + ",\n" for a in xs) + "    " * (depth + 2) + "]"


def flags_of(v):
    raw = [f for f in v.get("command_flags", []) if f not in HIDDEN]
    fl = {f.lower() for f in raw}
    specs = v.get("key_specs", [])
    # Redis's populateCommandLegacyRangeSpec: movablekeys from the key specs.
    movable = False
    if len(specs) == 1 and "index" in specs[0]["begin_search"] and "range" in specs[0]["find_keys"]:
        movable = "INCOMPLETE" in specs[0].get("flags", [])
    elif specs:
        prev, first = 0, None
        for k in specs:
            if "index" not in k["begin_search"] or "range" not in k["find_keys"]:
                movable = True
                continue
            pos, r = k["begin_search"]["index"]["pos"], k["find_keys"]["range"]
            if r["step"] != 1 or (prev and prev != pos - 1):
                movable = True
                continue
            if "INCOMPLETE" in k.get("flags", []):
                movable = True
            first = pos if first is None else min(first, pos)
            last = r["lastkey"] + pos if r["lastkey"] >= 0 else r["lastkey"]
            prev = max(prev & 0xffffffff, last & 0xffffffff)
            prev = prev - (1 << 32) if prev >= 1 << 31 else prev
        if first is None:
            movable = True
    if movable:
        fl.add("movablekeys")
    return [f for f in FLAG_ORDER if f in fl]


def acl_of(v, flags):
    cats = {c.lower() for c in v.get("acl_categories", [])}
    raw = set(v.get("command_flags", []))
    if "WRITE" in raw:
        cats.add("write")
    if "READONLY" in raw and "scripting" not in cats:
        cats.add("read")
    if "ADMIN" in raw:
        cats |= {"admin", "dangerous"}
    if "PUBSUB" in raw:
        cats.add("pubsub")
    if "FAST" in raw:
        cats.add("fast")
    if "BLOCKING" in raw:
        cats.add("blocking")
    if "fast" not in cats:
        cats.add("slow")
    return ["@" + c for c in ACL_ORDER if c in cats]


def meta(name, v):
    fl = flags_of(v)
    specs = v.get("key_specs", [])
    lines = [
        '    Meta {',
        '        name: "%s",' % name,
        '        arity: %d,' % v["arity"],
        '        since: "%s",' % v["since"],
        '        group: "%s",' % v["group"].replace("_", "-"),
        '        flags: %s,' % strs(fl),
        '        acl: %s,' % strs(acl_of(v, fl)),
        '        tips: %s,' % strs([t.lower() for t in v.get("command_tips", [])]),
        '        doc_flags: %s,' % strs([d.lower() for d in v.get("doc_flags", [])]),
        '        deprecated_since: %s,' % s(v.get("deprecated_since")),
        '        keys: &[%s],' % ", ".join(key_spec(k) for k in specs),
        '        getkeys: %s,' % ("true" if "get_keys_function" in v else "false"),
        '        args: %s,' % args(v.get("arguments")),
        '    },',
    ]
    return "\n".join(lines)


def main():
    cmds, subs = load()
    table = open("src/commands/table.rs").read()
    ours = set(re.findall(r'cmd!\("([^"|]+)"', table))
    out = [
        "//! @generated by scripts/command_meta.py from Redis %s's src/commands/*.json: the" % TAG,
        "//! interface facts COMMAND reports (arity, since, group, flags, ACL categories, tips, key",
        "//! specifications, argument shapes). No summaries, complexity, history or key-spec notes.",
        "//! Do not edit by hand; a command Redis does not have (TENANT.*) has no entry here.",
        "",
        "use super::command::{ARG_MULTIPLE, ARG_MULTIPLE_TOKEN, ARG_OPTIONAL, Arg, Meta};",
        "use super::keyspec::kf::*;",
        "use super::keyspec::{Begin, Find, ks};",
        "use Begin::*;",
        "use Find::*;",
        "",
        "pub static META: &[Meta] = &[",
    ]
    for name in sorted(ours & set(cmds)):
        out.append(meta(name, cmds[name]))
        for sub in SUBCOMMANDS.get(name, []):
            out.append(meta(name + "|" + sub, subs[(name, sub)]))
    out.append("];")
    text = "\n".join(out) + "\n"
    print(text, end="")


main()
