//! The command table: every command Ferrite knows, once.
//!
//! Dispatch, `COMMAND`, `INFO commandstats`, transactions, blocking wake-ups
//! and tenant checks all read this table; nothing runs that is not in it.

use std::sync::LazyLock;

use ahash::AHashMap;

use super::flags::*;
use super::{CommandSpec, connection, hashes, keys, lists, pubsub, server, sets, strings, tenant, transactions, zsets};

macro_rules! cmd {
    ($name:expr, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $group:expr, $handler:path) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            group: $group,
            handler: $handler,
        }
    };
}

/// Name, arity, flags, key positions (first, last, step), group, handler.
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    cmd!("ping", -1, FAST | SUB_CONTEXT, 0, 0, 0, "connection", connection::ping),
    cmd!("echo", 2, FAST, 0, 0, 0, "connection", connection::echo),
    cmd!("hello", -1, NO_AUTH | FAST, 0, 0, 0, "connection", connection::hello),
    cmd!("auth", -2, NO_AUTH | FAST, 0, 0, 0, "connection", connection::auth),
    cmd!("select", 2, FAST | LOADING | STALE, 0, 0, 0, "connection", connection::select),
    cmd!("quit", -1, NO_AUTH | FAST | TX_CONTROL | SUB_CONTEXT, 0, 0, 0, "connection", connection::quit),
    cmd!("reset", 1, NO_AUTH | FAST | TX_CONTROL | SUB_CONTEXT, 0, 0, 0, "connection", connection::reset),
    cmd!("client", -2, 0, 0, 0, 0, "connection", connection::client),
    // server
    cmd!("info", -1, LOADING | STALE, 0, 0, 0, "server", server::info),
    cmd!("dbsize", 1, READONLY | FAST, 0, 0, 0, "server", keys::dbsize),
    cmd!("flushdb", -1, WRITE | EXCLUSIVE, 0, 0, 0, "server", keys::flushdb),
    cmd!("flushall", -1, WRITE | EXCLUSIVE, 0, 0, 0, "server", keys::flushall),
    cmd!("config", -2, ADMIN | LOADING | STALE, 0, 0, 0, "server", server::config),
    cmd!("time", 1, FAST | LOADING | STALE, 0, 0, 0, "server", server::time),
    cmd!("save", 1, ADMIN | NOSCRIPT | NO_MULTI, 0, 0, 0, "server", server::save),
    cmd!("bgsave", -1, ADMIN | NOSCRIPT, 0, 0, 0, "server", server::bgsave),
    cmd!("bgrewriteaof", 1, ADMIN | NOSCRIPT, 0, 0, 0, "server", server::bgrewriteaof),
    cmd!("lastsave", 1, LOADING | STALE | FAST, 0, 0, 0, "server", server::lastsave),
    cmd!("shutdown", -1, ADMIN | NO_MULTI | LOADING | STALE, 0, 0, 0, "server", server::shutdown),
    cmd!("function", -2, NOSCRIPT, 0, 0, 0, "scripting", server::function),
    cmd!("memory", -2, READONLY, 2, 2, 1, "server", keys::memory),
    cmd!("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::debug),
    cmd!("command", -1, LOADING | STALE, 0, 0, 0, "server", server::command),
    // keys
    cmd!("del", -2, WRITE, 1, -1, 1, "generic", keys::del),
    cmd!("unlink", -2, WRITE | FAST, 1, -1, 1, "generic", keys::del),
    cmd!("exists", -2, READONLY | FAST, 1, -1, 1, "generic", keys::exists),
    cmd!("type", 2, READONLY | FAST, 1, 1, 1, "generic", keys::type_),
    cmd!("keys", 2, READONLY, 0, 0, 0, "generic", keys::keys),
    cmd!("scan", -2, READONLY, 0, 0, 0, "generic", keys::scan),
    cmd!("randomkey", 1, READONLY, 0, 0, 0, "generic", keys::randomkey),
    cmd!("rename", 3, WRITE, 1, 2, 1, "generic", keys::rename),
    cmd!("renamenx", 3, WRITE | FAST, 1, 2, 1, "generic", keys::renamenx),
    cmd!("copy", -3, WRITE | DENYOOM, 1, 2, 1, "generic", keys::copy),
    cmd!("move", 3, WRITE | FAST | EXCLUSIVE, 1, 1, 1, "generic", keys::move_),
    cmd!("touch", -2, READONLY | FAST, 1, -1, 1, "generic", keys::touch),
    cmd!("expire", -3, WRITE | FAST, 1, 1, 1, "generic", keys::expire),
    cmd!("pexpire", -3, WRITE | FAST, 1, 1, 1, "generic", keys::pexpire),
    cmd!("expireat", -3, WRITE | FAST, 1, 1, 1, "generic", keys::expireat),
    cmd!("pexpireat", -3, WRITE | FAST, 1, 1, 1, "generic", keys::pexpireat),
    cmd!("ttl", 2, READONLY | FAST, 1, 1, 1, "generic", keys::ttl),
    cmd!("pttl", 2, READONLY | FAST, 1, 1, 1, "generic", keys::pttl),
    cmd!("expiretime", 2, READONLY | FAST, 1, 1, 1, "generic", keys::expiretime),
    cmd!("pexpiretime", 2, READONLY | FAST, 1, 1, 1, "generic", keys::pexpiretime),
    cmd!("persist", 2, WRITE | FAST, 1, 1, 1, "generic", keys::persist),
    cmd!("object", -2, READONLY, 2, 2, 1, "generic", keys::object),
    // strings
    cmd!("get", 2, READONLY | FAST, 1, 1, 1, "string", strings::get),
    cmd!("set", -3, WRITE | DENYOOM, 1, 1, 1, "string", strings::set),
    cmd!("setnx", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::setnx),
    cmd!("setex", 4, WRITE | DENYOOM, 1, 1, 1, "string", strings::setex),
    cmd!("psetex", 4, WRITE | DENYOOM, 1, 1, 1, "string", strings::psetex),
    cmd!("mget", -2, READONLY | FAST, 1, -1, 1, "string", strings::mget),
    cmd!("mset", -3, WRITE | DENYOOM, 1, -1, 2, "string", strings::mset),
    cmd!("msetnx", -3, WRITE | DENYOOM, 1, -1, 2, "string", strings::msetnx),
    cmd!("getset", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::getset),
    cmd!("getdel", 2, WRITE | FAST, 1, 1, 1, "string", strings::getdel),
    cmd!("getex", -2, WRITE | FAST, 1, 1, 1, "string", strings::getex),
    cmd!("append", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::append),
    cmd!("strlen", 2, READONLY | FAST, 1, 1, 1, "string", strings::strlen),
    cmd!("incr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::incr),
    cmd!("decr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::decr),
    cmd!("incrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::incrby),
    cmd!("decrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::decrby),
    cmd!("incrbyfloat", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::incrbyfloat),
    cmd!("getrange", 4, READONLY, 1, 1, 1, "string", strings::getrange),
    cmd!("substr", 4, READONLY, 1, 1, 1, "string", strings::getrange),
    cmd!("setrange", 4, WRITE | DENYOOM, 1, 1, 1, "string", strings::setrange),
    cmd!("lcs", -3, READONLY, 1, 2, 1, "string", strings::lcs),
    // hashes
    cmd!("hset", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hset),
    cmd!("hsetnx", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hsetnx),
    cmd!("hget", 3, READONLY | FAST, 1, 1, 1, "hash", hashes::hget),
    cmd!("hmget", -3, READONLY | FAST, 1, 1, 1, "hash", hashes::hmget),
    cmd!("hmset", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hmset),
    cmd!("hdel", -3, WRITE | FAST, 1, 1, 1, "hash", hashes::hdel),
    cmd!("hlen", 2, READONLY | FAST, 1, 1, 1, "hash", hashes::hlen),
    cmd!("hstrlen", 3, READONLY | FAST, 1, 1, 1, "hash", hashes::hstrlen),
    cmd!("hexists", 3, READONLY | FAST, 1, 1, 1, "hash", hashes::hexists),
    cmd!("hkeys", 2, READONLY, 1, 1, 1, "hash", hashes::hkeys),
    cmd!("hvals", 2, READONLY, 1, 1, 1, "hash", hashes::hvals),
    cmd!("hgetall", 2, READONLY, 1, 1, 1, "hash", hashes::hgetall),
    cmd!("hincrby", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hincrby),
    cmd!("hincrbyfloat", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hincrbyfloat),
    cmd!("hrandfield", -2, READONLY, 1, 1, 1, "hash", hashes::hrandfield),
    cmd!("hscan", -3, READONLY, 1, 1, 1, "hash", hashes::hscan),
    // lists
    cmd!("lpush", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", lists::lpush),
    cmd!("rpush", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", lists::rpush),
    cmd!("lpushx", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", lists::lpushx),
    cmd!("rpushx", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", lists::rpushx),
    cmd!("lpop", -2, WRITE | FAST, 1, 1, 1, "list", lists::lpop),
    cmd!("rpop", -2, WRITE | FAST, 1, 1, 1, "list", lists::rpop),
    cmd!("llen", 2, READONLY | FAST, 1, 1, 1, "list", lists::llen),
    cmd!("lrange", 4, READONLY, 1, 1, 1, "list", lists::lrange),
    cmd!("lindex", 3, READONLY, 1, 1, 1, "list", lists::lindex),
    cmd!("lset", 4, WRITE | DENYOOM, 1, 1, 1, "list", lists::lset),
    cmd!("linsert", 5, WRITE | DENYOOM, 1, 1, 1, "list", lists::linsert),
    cmd!("lrem", 4, WRITE, 1, 1, 1, "list", lists::lrem),
    cmd!("ltrim", 4, WRITE, 1, 1, 1, "list", lists::ltrim),
    cmd!("lpos", -3, READONLY, 1, 1, 1, "list", lists::lpos),
    cmd!("lmove", 5, WRITE | DENYOOM, 1, 2, 1, "list", lists::lmove),
    cmd!("rpoplpush", 3, WRITE | DENYOOM, 1, 2, 1, "list", lists::rpoplpush),
    cmd!("lmpop", -4, WRITE | MOVABLEKEYS, 0, 0, 0, "list", lists::lmpop),
    cmd!("blpop", -3, WRITE | BLOCKING, 1, -2, 1, "list", lists::blpop),
    cmd!("brpop", -3, WRITE | BLOCKING, 1, -2, 1, "list", lists::brpop),
    cmd!("blmove", 6, WRITE | DENYOOM | BLOCKING, 1, 2, 1, "list", lists::blmove),
    cmd!("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, 1, 2, 1, "list", lists::brpoplpush),
    cmd!("blmpop", -5, WRITE | BLOCKING | MOVABLEKEYS, 0, 0, 0, "list", lists::blmpop),
    // sets
    cmd!("sadd", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "set", sets::sadd),
    cmd!("srem", -3, WRITE | FAST, 1, 1, 1, "set", sets::srem),
    cmd!("smembers", 2, READONLY, 1, 1, 1, "set", sets::smembers),
    cmd!("sismember", 3, READONLY | FAST, 1, 1, 1, "set", sets::sismember),
    cmd!("smismember", -3, READONLY | FAST, 1, 1, 1, "set", sets::smismember),
    cmd!("scard", 2, READONLY | FAST, 1, 1, 1, "set", sets::scard),
    cmd!("spop", -2, WRITE | FAST, 1, 1, 1, "set", sets::spop),
    cmd!("srandmember", -2, READONLY, 1, 1, 1, "set", sets::srandmember),
    cmd!("smove", 4, WRITE | FAST, 1, 2, 1, "set", sets::smove),
    cmd!("sinter", -2, READONLY, 1, -1, 1, "set", sets::sinter),
    cmd!("sintercard", -3, READONLY | MOVABLEKEYS, 0, 0, 0, "set", sets::sintercard),
    cmd!("sinterstore", -3, WRITE | DENYOOM, 1, -1, 1, "set", sets::sinterstore),
    cmd!("sunion", -2, READONLY, 1, -1, 1, "set", sets::sunion),
    cmd!("sunionstore", -3, WRITE | DENYOOM, 1, -1, 1, "set", sets::sunionstore),
    cmd!("sdiff", -2, READONLY, 1, -1, 1, "set", sets::sdiff),
    cmd!("sdiffstore", -3, WRITE | DENYOOM, 1, -1, 1, "set", sets::sdiffstore),
    cmd!("sscan", -3, READONLY, 1, 1, 1, "set", sets::sscan),
    // sorted sets
    cmd!("zadd", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "sorted_set", zsets::zadd),
    cmd!("zincrby", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "sorted_set", zsets::zincrby),
    cmd!("zrem", -3, WRITE | FAST, 1, 1, 1, "sorted_set", zsets::zrem),
    cmd!("zcard", 2, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zcard),
    cmd!("zcount", 4, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zcount),
    cmd!("zlexcount", 4, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zlexcount),
    cmd!("zscore", 3, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zscore),
    cmd!("zmscore", -3, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zmscore),
    cmd!("zrank", 3, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zrank),
    cmd!("zrevrank", 3, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zrevrank),
    cmd!("zrange", -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrange),
    cmd!("zrangestore", -5, WRITE | DENYOOM, 1, 2, 1, "sorted_set", zsets::zrangestore),
    cmd!("zrangebyscore", -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrangebyscore),
    cmd!("zrevrangebyscore", -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrevrangebyscore),
    cmd!("zrangebylex", -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrangebylex),
    cmd!("zrevrangebylex", -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrevrangebylex),
    cmd!("zrevrange", -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrevrange),
    cmd!("zremrangebyrank", 4, WRITE, 1, 1, 1, "sorted_set", zsets::zremrangebyrank),
    cmd!("zremrangebyscore", 4, WRITE, 1, 1, 1, "sorted_set", zsets::zremrangebyscore),
    cmd!("zremrangebylex", 4, WRITE, 1, 1, 1, "sorted_set", zsets::zremrangebylex),
    cmd!("zpopmin", -2, WRITE | FAST, 1, 1, 1, "sorted_set", zsets::zpopmin),
    cmd!("zpopmax", -2, WRITE | FAST, 1, 1, 1, "sorted_set", zsets::zpopmax),
    cmd!("bzpopmin", -3, WRITE | FAST | BLOCKING, 1, -2, 1, "sorted_set", zsets::bzpopmin),
    cmd!("bzpopmax", -3, WRITE | FAST | BLOCKING, 1, -2, 1, "sorted_set", zsets::bzpopmax),
    cmd!("zmpop", -4, WRITE | MOVABLEKEYS, 0, 0, 0, "sorted_set", zsets::zmpop),
    cmd!("bzmpop", -5, WRITE | BLOCKING | MOVABLEKEYS, 0, 0, 0, "sorted_set", zsets::bzmpop),
    cmd!("zrandmember", -2, READONLY, 1, 1, 1, "sorted_set", zsets::zrandmember),
    cmd!("zunion", -3, READONLY | MOVABLEKEYS, 0, 0, 0, "sorted_set", zsets::zunion),
    cmd!("zinter", -3, READONLY | MOVABLEKEYS, 0, 0, 0, "sorted_set", zsets::zinter),
    cmd!("zdiff", -3, READONLY | MOVABLEKEYS, 0, 0, 0, "sorted_set", zsets::zdiff),
    cmd!("zunionstore", -4, WRITE | DENYOOM | MOVABLEKEYS, 1, 1, 1, "sorted_set", zsets::zunionstore),
    cmd!("zinterstore", -4, WRITE | DENYOOM | MOVABLEKEYS, 1, 1, 1, "sorted_set", zsets::zinterstore),
    cmd!("zdiffstore", -4, WRITE | DENYOOM | MOVABLEKEYS, 1, 1, 1, "sorted_set", zsets::zdiffstore),
    cmd!("zintercard", -3, READONLY | MOVABLEKEYS, 0, 0, 0, "sorted_set", zsets::zintercard),
    cmd!("zscan", -3, READONLY, 1, 1, 1, "sorted_set", zsets::zscan),
    // transactions
    cmd!("multi", 1, FAST | TX_CONTROL | LOADING | STALE, 0, 0, 0, "transactions", transactions::multi),
    cmd!("exec", 1, TX_CONTROL | LOADING | STALE, 0, 0, 0, "transactions", transactions::exec),
    cmd!("discard", 1, FAST | TX_CONTROL | LOADING | STALE, 0, 0, 0, "transactions", transactions::discard),
    cmd!("watch", -2, FAST | TX_CONTROL | LOADING | STALE, 1, -1, 1, "transactions", transactions::watch),
    cmd!("unwatch", 1, FAST | LOADING | STALE, 0, 0, 0, "transactions", transactions::unwatch),
    // tenants (management entries are admin-only; a tenant may read its own record)
    cmd!("tenant", -2, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::tenant),
    cmd!("tenant.create", -2, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", tenant::create),
    cmd!("tenant.update", -3, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", tenant::update),
    cmd!("tenant.delete", 2, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", tenant::delete),
    cmd!("tenant.list", -1, ADMIN | TENANCY, 0, 0, 0, "tenancy", tenant::list),
    cmd!("tenant.info", -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::info),
    cmd!("tenant.use", 2, ADMIN | NO_MULTI | FAST | TENANCY, 0, 0, 0, "tenancy", tenant::use_),
    cmd!("tenant.current", 1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::current),
    cmd!("tenant.exit", 1, ADMIN | NO_MULTI | FAST | TENANCY, 0, 0, 0, "tenancy", tenant::exit),
    cmd!("tenant.limits.set", -4, ADMIN | TENANCY, 0, 0, 0, "tenancy", tenant::limits_set),
    cmd!("tenant.limits.get", -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::limits_get),
    cmd!("tenant.quota", -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::quota),
    cmd!("tenant.suspend", 2, ADMIN | TENANCY, 0, 0, 0, "tenancy", tenant::suspend),
    cmd!("tenant.activate", 2, ADMIN | TENANCY, 0, 0, 0, "tenancy", tenant::activate),
    cmd!("tenant.stats", -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::stats),
    cmd!("tenant.billing", -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::billing),
    cmd!("tenant.policy", -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::policy),
    // pubsub
    cmd!("subscribe", -2, PUBSUB | SUB_CONTEXT | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::subscribe),
    cmd!("unsubscribe", -1, PUBSUB | SUB_CONTEXT | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::unsubscribe),
    cmd!("psubscribe", -2, PUBSUB | SUB_CONTEXT | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::psubscribe),
    cmd!("punsubscribe", -1, PUBSUB | SUB_CONTEXT | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::punsubscribe),
    cmd!("publish", 3, PUBSUB | FAST | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::publish),
    cmd!("pubsub", -2, PUBSUB | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::pubsub),
];

static INDEX: LazyLock<AHashMap<&'static [u8], usize>> =
    LazyLock::new(|| COMMANDS.iter().enumerate().map(|(i, c)| (c.name.as_bytes(), i)).collect());

/// Finds a command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    INDEX.get(&buf[..name.len()]).map(|&i| (i, &COMMANDS[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert_eq!(c.name, c.name.to_lowercase());
            assert!(c.has(WRITE) != c.has(READONLY) || (!c.has(WRITE) && !c.has(READONLY)), "{}", c.name);
        }
        assert_eq!(lookup(b"GeT").map(|(_, c)| c.name), Some("get"));
    }

    #[test]
    fn key_positions() {
        let (_, mset) = lookup(b"mset").unwrap();
        assert_eq!(mset.key_indexes(5).collect::<Vec<_>>(), vec![1, 3]);
        let (_, blpop) = lookup(b"blpop").unwrap();
        assert_eq!(blpop.key_indexes(4).collect::<Vec<_>>(), vec![1, 2]);
        let (_, ping) = lookup(b"ping").unwrap();
        assert_eq!(ping.key_indexes(1).count(), 0);
    }
}
