//! The command table: every command Ferrite knows, once.
//!
//! Dispatch, `COMMAND`, `INFO commandstats`, transactions, blocking wake-ups
//! and tenant checks all read this table; nothing runs that is not in it.

use std::sync::LazyLock;

use ahash::AHashMap;

use super::flags::*;
use super::{
    CommandSpec, TenantClass, bitmaps, cluster, cluster_admin, command, connection, dump, functions, geo, hashes, hyperloglog,
    introspection, keys, lists, memory, migrate, pubsub, scripting, server, sets, sort, stream_groups, streams, strings, tenant,
    transactions, zsets,
};

/// Every entry names its tenant class: the macro has no default for it, so
/// no command can be registered without one.
macro_rules! cmd {
    ($name:expr, $class:ident, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $group:expr, $handler:path) => {
        CommandSpec {
            name: $name,
            class: TenantClass::$class,
            arity: $arity,
            flags: $flags | super::admission::beyond_args_flag($name),
            first_key: $first,
            last_key: $last,
            step: $step,
            group: $group,
            handler: $handler,
        }
    };
}

/// Name, tenant class, arity, flags, key positions (first, last, step), group, handler.
pub static COMMANDS: &[CommandSpec] = &[
    // connection
    cmd!("ping", Connection, -1, FAST | SUB_CONTEXT, 0, 0, 0, "connection", connection::ping),
    cmd!("echo", Connection, 2, FAST, 0, 0, 0, "connection", connection::echo),
    cmd!("hello", Session, -1, NO_AUTH | FAST | NOSCRIPT, 0, 0, 0, "connection", connection::hello),
    cmd!("auth", Session, -2, NO_AUTH | FAST | NOSCRIPT, 0, 0, 0, "connection", connection::auth),
    cmd!("select", Connection, 2, FAST | LOADING | STALE, 0, 0, 0, "connection", connection::select),
    cmd!("quit", Session, -1, NO_AUTH | FAST | TX_CONTROL | SUB_CONTEXT | NOSCRIPT, 0, 0, 0, "connection", connection::quit),
    cmd!("reset", Session, 1, NO_AUTH | FAST | TX_CONTROL | SUB_CONTEXT | NOSCRIPT, 0, 0, 0, "connection", connection::reset),
    cmd!("client", Connection, -2, NOSCRIPT, 0, 0, 0, "connection", connection::client),
    // server
    cmd!("info", Server, -1, LOADING | STALE, 0, 0, 0, "server", server::info),
    cmd!("dbsize", Data, 1, READONLY | FAST, 0, 0, 0, "server", keys::dbsize),
    cmd!("flushdb", Data, -1, WRITE | EXCLUSIVE, 0, 0, 0, "server", keys::flushdb),
    cmd!("flushall", Data, -1, WRITE | EXCLUSIVE, 0, 0, 0, "server", keys::flushall),
    cmd!("config", Admin, -2, ADMIN | LOADING | STALE | NOSCRIPT, 0, 0, 0, "server", server::config),
    cmd!("time", Server, 1, FAST | LOADING | STALE, 0, 0, 0, "server", server::time),
    cmd!("role", Server, 1, NOSCRIPT | LOADING | STALE | FAST, 0, 0, 0, "server", server::role),
    cmd!("wait", Server, 3, NOSCRIPT, 0, 0, 0, "generic", server::wait),
    cmd!("acl", Server, -2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::acl),
    cmd!("save", Admin, 1, ADMIN | NOSCRIPT | NO_MULTI, 0, 0, 0, "server", server::save),
    cmd!("bgsave", Admin, -1, ADMIN | NOSCRIPT, 0, 0, 0, "server", server::bgsave),
    cmd!("bgrewriteaof", Admin, 1, ADMIN | NOSCRIPT, 0, 0, 0, "server", server::bgrewriteaof),
    cmd!("lastsave", Server, 1, LOADING | STALE | FAST, 0, 0, 0, "server", server::lastsave),
    cmd!("shutdown", Admin, -1, ADMIN | NO_MULTI | LOADING | STALE | NOSCRIPT, 0, 0, 0, "server", server::shutdown),
    cmd!("memory", Data, -2, READONLY, 2, 2, 1, "server", memory::memory),
    cmd!("debug", Admin, -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::debug),
    cmd!("command", Server, -1, LOADING | STALE, 0, 0, 0, "server", command::command),
    cmd!("lolwut", Data, -1, READONLY | FAST, 0, 0, 0, "server", server::lolwut),
    // Admin in Redis; a tenant runs them on its own space (`admission::tenant_may_run`).
    cmd!("slowlog", Admin, -2, ADMIN | LOADING | STALE, 0, 0, 0, "server", introspection::slowlog),
    cmd!("monitor", Admin, 1, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", introspection::monitor),
    cmd!("latency", Admin, -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", introspection::latency),
    // keys
    cmd!("del", Data, -2, WRITE, 1, -1, 1, "generic", keys::del),
    cmd!("unlink", Data, -2, WRITE | FAST, 1, -1, 1, "generic", keys::del),
    cmd!("exists", Data, -2, READONLY | FAST, 1, -1, 1, "generic", keys::exists),
    cmd!("type", Data, 2, READONLY | FAST, 1, 1, 1, "generic", keys::type_),
    cmd!("keys", Data, 2, READONLY | SLOW, 0, 0, 0, "generic", keys::keys),
    cmd!("scan", Data, -2, READONLY, 0, 0, 0, "generic", keys::scan),
    cmd!("randomkey", Data, 1, READONLY, 0, 0, 0, "generic", keys::randomkey),
    cmd!("rename", Data, 3, WRITE | GROWS, 1, 2, 1, "generic", keys::rename),
    cmd!("renamenx", Data, 3, WRITE | FAST | GROWS, 1, 2, 1, "generic", keys::renamenx),
    cmd!("copy", Data, -3, WRITE | DENYOOM, 1, 2, 1, "generic", keys::copy),
    cmd!("sort", Data, -2, WRITE | DENYOOM | MOVABLEKEYS | SLOW, 1, 1, 1, "generic", sort::sort),
    cmd!("sort_ro", Data, -2, READONLY | SLOW, 1, 1, 1, "generic", sort::sort_ro),
    cmd!("move", Data, 3, WRITE | FAST | EXCLUSIVE, 1, 1, 1, "generic", keys::move_),
    cmd!("swapdb", Data, 3, WRITE | FAST | EXCLUSIVE, 0, 0, 0, "server", keys::swapdb),
    cmd!("touch", Data, -2, READONLY | FAST, 1, -1, 1, "generic", keys::touch),
    cmd!("expire", Data, -3, WRITE | FAST, 1, 1, 1, "generic", keys::expire),
    cmd!("pexpire", Data, -3, WRITE | FAST, 1, 1, 1, "generic", keys::pexpire),
    cmd!("expireat", Data, -3, WRITE | FAST, 1, 1, 1, "generic", keys::expireat),
    cmd!("pexpireat", Data, -3, WRITE | FAST, 1, 1, 1, "generic", keys::pexpireat),
    cmd!("ttl", Data, 2, READONLY | FAST, 1, 1, 1, "generic", keys::ttl),
    cmd!("pttl", Data, 2, READONLY | FAST, 1, 1, 1, "generic", keys::pttl),
    cmd!("expiretime", Data, 2, READONLY | FAST, 1, 1, 1, "generic", keys::expiretime),
    cmd!("pexpiretime", Data, 2, READONLY | FAST, 1, 1, 1, "generic", keys::pexpiretime),
    cmd!("persist", Data, 2, WRITE | FAST, 1, 1, 1, "generic", keys::persist),
    cmd!("object", Data, -2, READONLY, 2, 2, 1, "generic", keys::object),
    cmd!("dump", Data, 2, READONLY, 1, 1, 1, "generic", dump::dump),
    cmd!("restore", Data, -4, WRITE | DENYOOM, 1, 1, 1, "generic", dump::restore),
    // strings
    cmd!("get", Data, 2, READONLY | FAST, 1, 1, 1, "string", strings::get),
    cmd!("set", Data, -3, WRITE | DENYOOM, 1, 1, 1, "string", strings::set),
    cmd!("setnx", Data, 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::setnx),
    cmd!("setex", Data, 4, WRITE | DENYOOM, 1, 1, 1, "string", strings::setex),
    cmd!("psetex", Data, 4, WRITE | DENYOOM, 1, 1, 1, "string", strings::psetex),
    cmd!("mget", Data, -2, READONLY | FAST, 1, -1, 1, "string", strings::mget),
    cmd!("mset", Data, -3, WRITE | DENYOOM, 1, -1, 2, "string", strings::mset),
    cmd!("msetnx", Data, -3, WRITE | DENYOOM, 1, -1, 2, "string", strings::msetnx),
    cmd!("getset", Data, 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::getset),
    cmd!("getdel", Data, 2, WRITE | FAST, 1, 1, 1, "string", strings::getdel),
    cmd!("getex", Data, -2, WRITE | FAST, 1, 1, 1, "string", strings::getex),
    cmd!("append", Data, 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::append),
    cmd!("strlen", Data, 2, READONLY | FAST, 1, 1, 1, "string", strings::strlen),
    cmd!("incr", Data, 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::incr),
    cmd!("decr", Data, 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::decr),
    cmd!("incrby", Data, 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::incrby),
    cmd!("decrby", Data, 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::decrby),
    cmd!("incrbyfloat", Data, 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", strings::incrbyfloat),
    cmd!("getrange", Data, 4, READONLY, 1, 1, 1, "string", strings::getrange),
    cmd!("substr", Data, 4, READONLY, 1, 1, 1, "string", strings::getrange),
    cmd!("setrange", Data, 4, WRITE | DENYOOM, 1, 1, 1, "string", strings::setrange),
    // bitmaps
    cmd!("setbit", Data, 4, WRITE | DENYOOM, 1, 1, 1, "bitmap", bitmaps::setbit),
    cmd!("getbit", Data, 3, READONLY | FAST, 1, 1, 1, "bitmap", bitmaps::getbit),
    cmd!("bitcount", Data, -2, READONLY, 1, 1, 1, "bitmap", bitmaps::bitcount),
    cmd!("bitpos", Data, -3, READONLY, 1, 1, 1, "bitmap", bitmaps::bitpos),
    cmd!("bitop", Data, -4, WRITE | DENYOOM | SLOW, 2, -1, 1, "bitmap", bitmaps::bitop),
    cmd!("bitfield", Data, -2, WRITE | DENYOOM, 1, 1, 1, "bitmap", bitmaps::bitfield),
    cmd!("bitfield_ro", Data, -2, READONLY | FAST, 1, 1, 1, "bitmap", bitmaps::bitfield_ro),
    cmd!("lcs", Data, -3, READONLY | SLOW, 1, 2, 1, "string", strings::lcs),
    // hashes
    cmd!("hset", Data, -4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hset),
    cmd!("hsetnx", Data, 4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hsetnx),
    cmd!("hget", Data, 3, READONLY | FAST, 1, 1, 1, "hash", hashes::hget),
    cmd!("hmget", Data, -3, READONLY | FAST, 1, 1, 1, "hash", hashes::hmget),
    cmd!("hmset", Data, -4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hmset),
    cmd!("hdel", Data, -3, WRITE | FAST, 1, 1, 1, "hash", hashes::hdel),
    cmd!("hlen", Data, 2, READONLY | FAST, 1, 1, 1, "hash", hashes::hlen),
    cmd!("hstrlen", Data, 3, READONLY | FAST, 1, 1, 1, "hash", hashes::hstrlen),
    cmd!("hexists", Data, 3, READONLY | FAST, 1, 1, 1, "hash", hashes::hexists),
    cmd!("hkeys", Data, 2, READONLY, 1, 1, 1, "hash", hashes::hkeys),
    cmd!("hvals", Data, 2, READONLY, 1, 1, 1, "hash", hashes::hvals),
    cmd!("hgetall", Data, 2, READONLY, 1, 1, 1, "hash", hashes::hgetall),
    cmd!("hincrby", Data, 4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hincrby),
    cmd!("hincrbyfloat", Data, 4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", hashes::hincrbyfloat),
    cmd!("hrandfield", Data, -2, READONLY, 1, 1, 1, "hash", hashes::hrandfield),
    cmd!("hscan", Data, -3, READONLY, 1, 1, 1, "hash", hashes::hscan),
    // lists
    cmd!("lpush", Data, -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", lists::lpush),
    cmd!("rpush", Data, -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", lists::rpush),
    cmd!("lpushx", Data, -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", lists::lpushx),
    cmd!("rpushx", Data, -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", lists::rpushx),
    cmd!("lpop", Data, -2, WRITE | FAST, 1, 1, 1, "list", lists::lpop),
    cmd!("rpop", Data, -2, WRITE | FAST, 1, 1, 1, "list", lists::rpop),
    cmd!("llen", Data, 2, READONLY | FAST, 1, 1, 1, "list", lists::llen),
    cmd!("lrange", Data, 4, READONLY, 1, 1, 1, "list", lists::lrange),
    cmd!("lindex", Data, 3, READONLY, 1, 1, 1, "list", lists::lindex),
    cmd!("lset", Data, 4, WRITE | DENYOOM, 1, 1, 1, "list", lists::lset),
    cmd!("linsert", Data, 5, WRITE | DENYOOM, 1, 1, 1, "list", lists::linsert),
    cmd!("lrem", Data, 4, WRITE, 1, 1, 1, "list", lists::lrem),
    cmd!("ltrim", Data, 4, WRITE, 1, 1, 1, "list", lists::ltrim),
    cmd!("lpos", Data, -3, READONLY, 1, 1, 1, "list", lists::lpos),
    cmd!("lmove", Data, 5, WRITE | DENYOOM, 1, 2, 1, "list", lists::lmove),
    cmd!("rpoplpush", Data, 3, WRITE | DENYOOM, 1, 2, 1, "list", lists::rpoplpush),
    cmd!("lmpop", Data, -4, WRITE | MOVABLEKEYS, 0, 0, 0, "list", lists::lmpop),
    cmd!("blpop", Data, -3, WRITE | BLOCKING | NOSCRIPT, 1, -2, 1, "list", lists::blpop),
    cmd!("brpop", Data, -3, WRITE | BLOCKING | NOSCRIPT, 1, -2, 1, "list", lists::brpop),
    cmd!("blmove", Data, 6, WRITE | DENYOOM | BLOCKING | NOSCRIPT, 1, 2, 1, "list", lists::blmove),
    cmd!("brpoplpush", Data, 4, WRITE | DENYOOM | BLOCKING | NOSCRIPT, 1, 2, 1, "list", lists::brpoplpush),
    cmd!("blmpop", Data, -5, WRITE | BLOCKING | MOVABLEKEYS, 0, 0, 0, "list", lists::blmpop),
    // sets
    cmd!("sadd", Data, -3, WRITE | DENYOOM | FAST, 1, 1, 1, "set", sets::sadd),
    cmd!("srem", Data, -3, WRITE | FAST, 1, 1, 1, "set", sets::srem),
    cmd!("smembers", Data, 2, READONLY, 1, 1, 1, "set", sets::smembers),
    cmd!("sismember", Data, 3, READONLY | FAST, 1, 1, 1, "set", sets::sismember),
    cmd!("smismember", Data, -3, READONLY | FAST, 1, 1, 1, "set", sets::smismember),
    cmd!("scard", Data, 2, READONLY | FAST, 1, 1, 1, "set", sets::scard),
    cmd!("spop", Data, -2, WRITE | FAST, 1, 1, 1, "set", sets::spop),
    cmd!("srandmember", Data, -2, READONLY, 1, 1, 1, "set", sets::srandmember),
    cmd!("smove", Data, 4, WRITE | FAST | GROWS, 1, 2, 1, "set", sets::smove),
    cmd!("sinter", Data, -2, READONLY | SLOW, 1, -1, 1, "set", sets::sinter),
    cmd!("sintercard", Data, -3, READONLY | MOVABLEKEYS | SLOW, 0, 0, 0, "set", sets::sintercard),
    cmd!("sinterstore", Data, -3, WRITE | DENYOOM | SLOW, 1, -1, 1, "set", sets::sinterstore),
    cmd!("sunion", Data, -2, READONLY | SLOW, 1, -1, 1, "set", sets::sunion),
    cmd!("sunionstore", Data, -3, WRITE | DENYOOM | SLOW, 1, -1, 1, "set", sets::sunionstore),
    cmd!("sdiff", Data, -2, READONLY | SLOW, 1, -1, 1, "set", sets::sdiff),
    cmd!("sdiffstore", Data, -3, WRITE | DENYOOM | SLOW, 1, -1, 1, "set", sets::sdiffstore),
    cmd!("sscan", Data, -3, READONLY, 1, 1, 1, "set", sets::sscan),
    // sorted sets
    cmd!("zadd", Data, -4, WRITE | DENYOOM | FAST, 1, 1, 1, "sorted_set", zsets::zadd),
    cmd!("zincrby", Data, 4, WRITE | DENYOOM | FAST, 1, 1, 1, "sorted_set", zsets::zincrby),
    cmd!("zrem", Data, -3, WRITE | FAST, 1, 1, 1, "sorted_set", zsets::zrem),
    cmd!("zcard", Data, 2, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zcard),
    cmd!("zcount", Data, 4, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zcount),
    cmd!("zlexcount", Data, 4, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zlexcount),
    cmd!("zscore", Data, 3, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zscore),
    cmd!("zmscore", Data, -3, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zmscore),
    cmd!("zrank", Data, 3, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zrank),
    cmd!("zrevrank", Data, 3, READONLY | FAST, 1, 1, 1, "sorted_set", zsets::zrevrank),
    cmd!("zrange", Data, -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrange),
    cmd!("zrangestore", Data, -5, WRITE | DENYOOM, 1, 2, 1, "sorted_set", zsets::zrangestore),
    cmd!("zrangebyscore", Data, -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrangebyscore),
    cmd!("zrevrangebyscore", Data, -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrevrangebyscore),
    cmd!("zrangebylex", Data, -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrangebylex),
    cmd!("zrevrangebylex", Data, -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrevrangebylex),
    cmd!("zrevrange", Data, -4, READONLY, 1, 1, 1, "sorted_set", zsets::zrevrange),
    cmd!("zremrangebyrank", Data, 4, WRITE, 1, 1, 1, "sorted_set", zsets::zremrangebyrank),
    cmd!("zremrangebyscore", Data, 4, WRITE, 1, 1, 1, "sorted_set", zsets::zremrangebyscore),
    cmd!("zremrangebylex", Data, 4, WRITE, 1, 1, 1, "sorted_set", zsets::zremrangebylex),
    cmd!("zpopmin", Data, -2, WRITE | FAST, 1, 1, 1, "sorted_set", zsets::zpopmin),
    cmd!("zpopmax", Data, -2, WRITE | FAST, 1, 1, 1, "sorted_set", zsets::zpopmax),
    cmd!("bzpopmin", Data, -3, WRITE | FAST | BLOCKING | NOSCRIPT, 1, -2, 1, "sorted_set", zsets::bzpopmin),
    cmd!("bzpopmax", Data, -3, WRITE | FAST | BLOCKING | NOSCRIPT, 1, -2, 1, "sorted_set", zsets::bzpopmax),
    cmd!("zmpop", Data, -4, WRITE | MOVABLEKEYS, 0, 0, 0, "sorted_set", zsets::zmpop),
    cmd!("bzmpop", Data, -5, WRITE | BLOCKING | MOVABLEKEYS, 0, 0, 0, "sorted_set", zsets::bzmpop),
    cmd!("zrandmember", Data, -2, READONLY, 1, 1, 1, "sorted_set", zsets::zrandmember),
    cmd!("zunion", Data, -3, READONLY | MOVABLEKEYS | SLOW, 0, 0, 0, "sorted_set", zsets::zunion),
    cmd!("zinter", Data, -3, READONLY | MOVABLEKEYS | SLOW, 0, 0, 0, "sorted_set", zsets::zinter),
    cmd!("zdiff", Data, -3, READONLY | MOVABLEKEYS | SLOW, 0, 0, 0, "sorted_set", zsets::zdiff),
    cmd!("zunionstore", Data, -4, WRITE | DENYOOM | MOVABLEKEYS | SLOW, 1, 1, 1, "sorted_set", zsets::zunionstore),
    cmd!("zinterstore", Data, -4, WRITE | DENYOOM | MOVABLEKEYS | SLOW, 1, 1, 1, "sorted_set", zsets::zinterstore),
    cmd!("zdiffstore", Data, -4, WRITE | DENYOOM | MOVABLEKEYS | SLOW, 1, 1, 1, "sorted_set", zsets::zdiffstore),
    cmd!("zintercard", Data, -3, READONLY | MOVABLEKEYS | SLOW, 0, 0, 0, "sorted_set", zsets::zintercard),
    cmd!("zscan", Data, -3, READONLY, 1, 1, 1, "sorted_set", zsets::zscan),
    // scripting
    cmd!("eval", Data, -3, WRITE | NOSCRIPT | MOVABLEKEYS | SLOW | MAY_REPLICATE, 0, 0, 0, "scripting", scripting::eval),
    cmd!("eval_ro", Data, -3, READONLY | NOSCRIPT | MOVABLEKEYS | SLOW, 0, 0, 0, "scripting", scripting::eval_ro),
    cmd!("evalsha", Data, -3, WRITE | NOSCRIPT | MOVABLEKEYS | SLOW | MAY_REPLICATE, 0, 0, 0, "scripting", scripting::evalsha),
    cmd!("evalsha_ro", Data, -3, READONLY | NOSCRIPT | MOVABLEKEYS | SLOW, 0, 0, 0, "scripting", scripting::evalsha_ro),
    cmd!("script", Server, -2, NOSCRIPT | UNLOCKED, 0, 0, 0, "scripting", scripting::script),
    // FUNCTION takes no space lock (KILL and STATS must reach a running
    // function); the libraries have their own. LOAD, DELETE, FLUSH and
    // RESTORE are logged; the rest mark themselves unchanged.
    cmd!("function", Data, -2, WRITE | NOSCRIPT | UNLOCKED, 0, 0, 0, "scripting", functions::function),
    cmd!("fcall", Data, -3, WRITE | NOSCRIPT | MOVABLEKEYS | SLOW | MAY_REPLICATE, 0, 0, 0, "scripting", functions::fcall),
    cmd!("fcall_ro", Data, -3, READONLY | NOSCRIPT | MOVABLEKEYS | SLOW, 0, 0, 0, "scripting", functions::fcall_ro),
    // hyperloglog
    cmd!("pfadd", Data, -2, WRITE | DENYOOM | FAST, 1, 1, 1, "hyperloglog", hyperloglog::pfadd),
    cmd!("pfcount", Data, -2, READONLY | MAY_REPLICATE, 1, -1, 1, "hyperloglog", hyperloglog::pfcount),
    cmd!("pfmerge", Data, -2, WRITE | DENYOOM, 1, -1, 1, "hyperloglog", hyperloglog::pfmerge),
    cmd!("pfdebug", Admin, 3, ADMIN, 2, 2, 1, "hyperloglog", hyperloglog::pfdebug),
    cmd!("pfselftest", Admin, 1, ADMIN, 0, 0, 0, "hyperloglog", hyperloglog::pfselftest),
    // geo
    cmd!("geoadd", Data, -5, WRITE | DENYOOM, 1, 1, 1, "geo", geo::geoadd),
    cmd!("geodist", Data, -4, READONLY, 1, 1, 1, "geo", geo::geodist),
    cmd!("geohash", Data, -2, READONLY, 1, 1, 1, "geo", geo::geohash),
    cmd!("geopos", Data, -2, READONLY, 1, 1, 1, "geo", geo::geopos),
    cmd!("georadius", Data, -6, WRITE | DENYOOM | MOVABLEKEYS, 1, 1, 1, "geo", geo::georadius),
    cmd!("georadius_ro", Data, -6, READONLY, 1, 1, 1, "geo", geo::georadius),
    cmd!("georadiusbymember", Data, -5, WRITE | DENYOOM | MOVABLEKEYS, 1, 1, 1, "geo", geo::georadiusbymember),
    cmd!("georadiusbymember_ro", Data, -5, READONLY, 1, 1, 1, "geo", geo::georadiusbymember),
    cmd!("geosearch", Data, -7, READONLY, 1, 1, 1, "geo", geo::geosearch),
    cmd!("geosearchstore", Data, -8, WRITE | DENYOOM, 1, 2, 1, "geo", geo::geosearchstore),
    // streams
    cmd!("xadd", Data, -5, WRITE | DENYOOM | FAST, 1, 1, 1, "stream", streams::xadd),
    cmd!("xrange", Data, -4, READONLY, 1, 1, 1, "stream", streams::xrange),
    cmd!("xrevrange", Data, -4, READONLY, 1, 1, 1, "stream", streams::xrevrange),
    cmd!("xlen", Data, 2, READONLY | FAST, 1, 1, 1, "stream", streams::xlen),
    cmd!("xdel", Data, -3, WRITE | FAST, 1, 1, 1, "stream", streams::xdel),
    cmd!("xtrim", Data, -4, WRITE, 1, 1, 1, "stream", streams::xtrim),
    cmd!("xsetid", Data, -3, WRITE | DENYOOM | FAST, 1, 1, 1, "stream", streams::xsetid),
    cmd!("xread", Data, -4, READONLY | BLOCKING | MOVABLEKEYS, 0, 0, 0, "stream", streams::xread),
    cmd!("xreadgroup", Data, -7, WRITE | GROWS | BLOCKING | MOVABLEKEYS, 0, 0, 0, "stream", streams::xreadgroup),
    cmd!("xgroup", Data, -2, WRITE | DENYOOM, 2, 2, 1, "stream", stream_groups::xgroup),
    cmd!("xack", Data, -4, WRITE | FAST, 1, 1, 1, "stream", stream_groups::xack),
    cmd!("xpending", Data, -3, READONLY, 1, 1, 1, "stream", stream_groups::xpending),
    cmd!("xclaim", Data, -6, WRITE | GROWS | FAST, 1, 1, 1, "stream", stream_groups::xclaim),
    cmd!("xautoclaim", Data, -6, WRITE | GROWS | FAST, 1, 1, 1, "stream", stream_groups::xautoclaim),
    cmd!("xinfo", Data, -2, READONLY, 2, 2, 1, "stream", stream_groups::xinfo),
    // transactions
    cmd!("multi", Transaction, 1, FAST | TX_CONTROL | LOADING | STALE | NOSCRIPT, 0, 0, 0, "transactions", transactions::multi),
    cmd!("exec", Transaction, 1, TX_CONTROL | LOADING | STALE | NOSCRIPT, 0, 0, 0, "transactions", transactions::exec),
    cmd!("discard", Transaction, 1, FAST | TX_CONTROL | LOADING | STALE | NOSCRIPT, 0, 0, 0, "transactions", transactions::discard),
    cmd!("watch", Transaction, -2, FAST | TX_CONTROL | LOADING | STALE | NOSCRIPT, 1, -1, 1, "transactions", transactions::watch),
    cmd!("unwatch", Transaction, 1, FAST | LOADING | STALE | NOSCRIPT, 0, 0, 0, "transactions", transactions::unwatch),
    // tenants (management entries are admin-only; a tenant may read its own record)
    cmd!("tenant", Tenancy, -2, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::tenant),
    cmd!("tenant.create", Admin, -2, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", tenant::create),
    cmd!("tenant.update", Admin, -3, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", tenant::update),
    cmd!("tenant.delete", Admin, 2, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", tenant::delete),
    cmd!("tenant.list", Admin, -1, ADMIN | TENANCY, 0, 0, 0, "tenancy", tenant::list),
    cmd!("tenant.info", Tenancy, -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::info),
    cmd!("tenant.use", Admin, 2, ADMIN | NO_MULTI | FAST | TENANCY, 0, 0, 0, "tenancy", tenant::use_),
    cmd!("tenant.current", Tenancy, 1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::current),
    cmd!("tenant.exit", Admin, 1, ADMIN | NO_MULTI | FAST | TENANCY, 0, 0, 0, "tenancy", tenant::exit),
    cmd!("tenant.limits.set", Admin, -4, ADMIN | TENANCY, 0, 0, 0, "tenancy", tenant::limits_set),
    cmd!("tenant.limits.get", Tenancy, -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::limits_get),
    cmd!("tenant.quota", Tenancy, -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::quota),
    cmd!("tenant.suspend", Admin, 2, ADMIN | TENANCY, 0, 0, 0, "tenancy", tenant::suspend),
    cmd!("tenant.activate", Admin, 2, ADMIN | TENANCY, 0, 0, 0, "tenancy", tenant::activate),
    cmd!("tenant.stats", Tenancy, -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::stats),
    cmd!("tenant.billing", Tenancy, -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::billing),
    cmd!("tenant.migrate", Admin, -3, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", migrate::migrate),
    cmd!("tenant.import", Admin, -2, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", migrate::import),
    cmd!("tenant.apply", Admin, 3, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", migrate::apply),
    cmd!("tenant.bind", Admin, 2, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", migrate::bind),
    cmd!("tenant.nodes", Admin, 1, ADMIN | TENANCY, 0, 0, 0, "tenancy", cluster::nodes),
    cmd!("tenant.locate", Admin, 2, ADMIN | FAST | TENANCY, 0, 0, 0, "tenancy", cluster::locate),
    cmd!("tenant.hops", Admin, 2, ADMIN | FAST | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", cluster::hops),
    cmd!("tenant.rebalance", Admin, -1, ADMIN | NO_MULTI | TENANCY, 0, 0, 0, "tenancy", cluster_admin::rebalance),
    cmd!("tenant.policy", Tenancy, -1, FAST | TENANCY, 0, 0, 0, "tenancy", tenant::policy),
    // pubsub
    cmd!("subscribe", PubSub, -2, PUBSUB | SUB_CONTEXT | LOADING | STALE | NOSCRIPT, 0, 0, 0, "pubsub", pubsub::subscribe),
    cmd!("unsubscribe", PubSub, -1, PUBSUB | SUB_CONTEXT | LOADING | STALE | NOSCRIPT, 0, 0, 0, "pubsub", pubsub::unsubscribe),
    cmd!("psubscribe", PubSub, -2, PUBSUB | SUB_CONTEXT | LOADING | STALE | NOSCRIPT, 0, 0, 0, "pubsub", pubsub::psubscribe),
    cmd!("punsubscribe", PubSub, -1, PUBSUB | SUB_CONTEXT | LOADING | STALE | NOSCRIPT, 0, 0, 0, "pubsub", pubsub::punsubscribe),
    cmd!("publish", PubSub, 3, PUBSUB | FAST | LOADING | STALE | MAY_REPLICATE, 0, 0, 0, "pubsub", pubsub::publish),
    cmd!("pubsub", PubSub, -2, PUBSUB | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::pubsub),
    // Sharded pub/sub: Redis declares each channel a key (cluster routing);
    // here that is NOT_KEY, reported by COMMAND but never seen by dispatch as
    // a key (no `__tenant:` rewriting, no locking on it, no key quotas).
    cmd!("ssubscribe", PubSub, -2, PUBSUB | SUB_CONTEXT | LOADING | STALE | NOSCRIPT | NOT_KEY, 0, 0, 0, "pubsub", pubsub::ssubscribe),
    cmd!("sunsubscribe", PubSub, -1, PUBSUB | SUB_CONTEXT | LOADING | STALE | NOSCRIPT | NOT_KEY, 0, 0, 0, "pubsub", pubsub::sunsubscribe),
    cmd!("spublish", PubSub, 3, PUBSUB | FAST | LOADING | STALE | NOT_KEY, 0, 0, 0, "pubsub", pubsub::spublish),
];

/// The subcommands of container commands (CLIENT, CONFIG, OBJECT...), as
/// `container|subcommand`: what COMMAND INFO, DOCS and LIST report, with
/// Redis 7.0's arity, flags and key positions. Each has a tenant class: its
/// container's, since dispatch runs (and admits) the container's entry with
/// the subcommand as its first argument; the flags are Redis's (CLIENT KILL
/// is `admin` there, while a tenant may kill its own connections here).
/// Ferrite's own additions (CLIENT NO-TOUCH and SETINFO, from Redis 7.2)
/// are listed too. `lookup` never finds these: they are not commands.
pub static SUBCOMMANDS: &[CommandSpec] = &[
    cmd!("acl|cat", Server, -2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::acl),
    cmd!("acl|help", Server, 2, LOADING | STALE, 0, 0, 0, "server", server::acl),
    cmd!("acl|list", Server, 2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::acl),
    cmd!("acl|users", Server, 2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::acl),
    cmd!("acl|whoami", Server, 2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::acl),
    cmd!("client|caching", Connection, 3, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|getname", Connection, 2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|getredir", Connection, 2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|help", Connection, 2, LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|id", Connection, 2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|info", Connection, 2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|kill", Connection, -3, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|list", Connection, -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|no-evict", Connection, 3, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|pause", Connection, -3, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|no-touch", Connection, 3, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|reply", Connection, 3, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|setname", Connection, 3, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|setinfo", Connection, 4, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|tracking", Connection, -3, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|trackinginfo", Connection, 2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|unblock", Connection, -3, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("client|unpause", Connection, 2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "connection", connection::client),
    cmd!("command|count", Server, 2, LOADING | STALE, 0, 0, 0, "server", command::command),
    cmd!("command|docs", Server, -2, LOADING | STALE, 0, 0, 0, "server", command::command),
    cmd!("command|getkeys", Server, -4, LOADING | STALE, 0, 0, 0, "server", command::command),
    cmd!("command|getkeysandflags", Server, -4, LOADING | STALE, 0, 0, 0, "server", command::command),
    cmd!("command|help", Server, 2, LOADING | STALE, 0, 0, 0, "server", command::command),
    cmd!("command|info", Server, -2, LOADING | STALE, 0, 0, 0, "server", command::command),
    cmd!("command|list", Server, -2, LOADING | STALE, 0, 0, 0, "server", command::command),
    cmd!("config|get", Admin, -3, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::config),
    cmd!("config|help", Admin, 2, LOADING | STALE, 0, 0, 0, "server", server::config),
    cmd!("config|resetstat", Admin, 2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::config),
    cmd!("config|rewrite", Admin, 2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::config),
    cmd!("config|set", Admin, -4, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", server::config),
    cmd!("function|delete", Data, 3, WRITE | NOSCRIPT, 0, 0, 0, "scripting", functions::function),
    cmd!("function|dump", Data, 2, NOSCRIPT, 0, 0, 0, "scripting", functions::function),
    cmd!("function|flush", Data, -2, WRITE | NOSCRIPT, 0, 0, 0, "scripting", functions::function),
    cmd!("function|help", Data, 2, LOADING | STALE, 0, 0, 0, "scripting", functions::function),
    cmd!("function|kill", Data, 2, NOSCRIPT, 0, 0, 0, "scripting", functions::function),
    cmd!("function|list", Data, -2, NOSCRIPT, 0, 0, 0, "scripting", functions::function),
    cmd!("function|load", Data, -3, WRITE | DENYOOM | NOSCRIPT, 0, 0, 0, "scripting", functions::function),
    cmd!("function|restore", Data, -3, WRITE | DENYOOM | NOSCRIPT, 0, 0, 0, "scripting", functions::function),
    cmd!("function|stats", Data, 2, NOSCRIPT, 0, 0, 0, "scripting", functions::function),
    cmd!("latency|doctor", Admin, 2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", introspection::latency),
    cmd!("latency|help", Admin, 2, LOADING | STALE, 0, 0, 0, "server", introspection::latency),
    cmd!("latency|histogram", Admin, -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", introspection::latency),
    cmd!("latency|history", Admin, 3, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", introspection::latency),
    cmd!("latency|latest", Admin, 2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", introspection::latency),
    cmd!("latency|reset", Admin, -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", introspection::latency),
    cmd!("memory|doctor", Data, 2, 0, 0, 0, 0, "server", memory::memory),
    cmd!("memory|help", Data, 2, LOADING | STALE, 0, 0, 0, "server", memory::memory),
    cmd!("memory|malloc-stats", Data, 2, 0, 0, 0, 0, "server", memory::memory),
    cmd!("memory|purge", Data, 2, 0, 0, 0, 0, "server", memory::memory),
    cmd!("memory|stats", Data, 2, 0, 0, 0, 0, "server", memory::memory),
    cmd!("memory|usage", Data, -3, READONLY, 2, 2, 1, "server", memory::memory),
    cmd!("object|encoding", Data, 3, READONLY, 2, 2, 1, "generic", keys::object),
    cmd!("object|freq", Data, 3, READONLY, 2, 2, 1, "generic", keys::object),
    cmd!("object|help", Data, 2, LOADING | STALE, 0, 0, 0, "generic", keys::object),
    cmd!("object|idletime", Data, 3, READONLY, 2, 2, 1, "generic", keys::object),
    cmd!("object|refcount", Data, 3, READONLY, 2, 2, 1, "generic", keys::object),
    cmd!("pubsub|channels", PubSub, -2, PUBSUB | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::pubsub),
    cmd!("pubsub|help", PubSub, 2, LOADING | STALE, 0, 0, 0, "pubsub", pubsub::pubsub),
    cmd!("pubsub|numpat", PubSub, 2, PUBSUB | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::pubsub),
    cmd!("pubsub|numsub", PubSub, -2, PUBSUB | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::pubsub),
    cmd!("pubsub|shardchannels", PubSub, -2, PUBSUB | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::pubsub),
    cmd!("pubsub|shardnumsub", PubSub, -2, PUBSUB | LOADING | STALE, 0, 0, 0, "pubsub", pubsub::pubsub),
    cmd!("script|debug", Server, 3, NOSCRIPT, 0, 0, 0, "scripting", scripting::script),
    cmd!("script|exists", Server, -3, NOSCRIPT, 0, 0, 0, "scripting", scripting::script),
    cmd!("script|flush", Server, -2, NOSCRIPT, 0, 0, 0, "scripting", scripting::script),
    cmd!("script|help", Server, 2, LOADING | STALE, 0, 0, 0, "scripting", scripting::script),
    cmd!("script|kill", Server, 2, NOSCRIPT, 0, 0, 0, "scripting", scripting::script),
    cmd!("script|load", Server, 3, NOSCRIPT | STALE, 0, 0, 0, "scripting", scripting::script),
    cmd!("slowlog|get", Admin, -2, ADMIN | LOADING | STALE, 0, 0, 0, "server", introspection::slowlog),
    cmd!("slowlog|help", Admin, 2, LOADING | STALE, 0, 0, 0, "server", introspection::slowlog),
    cmd!("slowlog|len", Admin, 2, ADMIN | LOADING | STALE, 0, 0, 0, "server", introspection::slowlog),
    cmd!("slowlog|reset", Admin, 2, ADMIN | LOADING | STALE, 0, 0, 0, "server", introspection::slowlog),
    cmd!("xgroup|create", Data, -5, WRITE | DENYOOM, 2, 2, 1, "stream", stream_groups::xgroup),
    cmd!("xgroup|createconsumer", Data, 5, WRITE | DENYOOM, 2, 2, 1, "stream", stream_groups::xgroup),
    cmd!("xgroup|delconsumer", Data, 5, WRITE, 2, 2, 1, "stream", stream_groups::xgroup),
    cmd!("xgroup|destroy", Data, 4, WRITE, 2, 2, 1, "stream", stream_groups::xgroup),
    cmd!("xgroup|help", Data, 2, LOADING | STALE, 0, 0, 0, "stream", stream_groups::xgroup),
    cmd!("xgroup|setid", Data, -5, WRITE, 2, 2, 1, "stream", stream_groups::xgroup),
    cmd!("xinfo|consumers", Data, 4, READONLY, 2, 2, 1, "stream", stream_groups::xinfo),
    cmd!("xinfo|groups", Data, 3, READONLY, 2, 2, 1, "stream", stream_groups::xinfo),
    cmd!("xinfo|help", Data, 2, LOADING | STALE, 0, 0, 0, "stream", stream_groups::xinfo),
    cmd!("xinfo|stream", Data, -3, READONLY, 2, 2, 1, "stream", stream_groups::xinfo),
];

static SUB_INDEX: LazyLock<AHashMap<&'static str, usize>> =
    LazyLock::new(|| SUBCOMMANDS.iter().enumerate().map(|(i, c)| (c.name, i)).collect());

/// Finds `container|subcommand` (either part in any case).
pub fn lookup_subcommand(container: &str, sub: &[u8]) -> Option<&'static CommandSpec> {
    let name = format!("{}|{}", container.to_ascii_lowercase(), String::from_utf8_lossy(sub).to_ascii_lowercase());
    SUB_INDEX.get(name.as_str()).map(|&i| &SUBCOMMANDS[i])
}

/// The subcommands of a container, in table order (none for a plain command).
pub fn subcommands_of(container: &str) -> impl Iterator<Item = &'static CommandSpec> + '_ {
    SUBCOMMANDS.iter().filter(move |s| s.name.split_once('|').is_some_and(|(c, _)| c == container))
}

/// The longest command name, padded: names are looked up as four words.
const NAME_MAX: usize = 32;
/// Slots of [`INDEX`]: a power of two, at least four times the commands,
/// so a probe rarely goes past its first slot.
const INDEX_SLOTS: usize = 2048;

/// Command names by [`name_hash`], open addressing with linear probing:
/// each slot holds a command's index plus one (0: empty). Every request
/// looks its command up here, and a general-purpose map hashed and
/// compared its name in about four times the instructions.
static INDEX: LazyLock<Box<[u16; INDEX_SLOTS]>> = LazyLock::new(|| {
    assert!(COMMANDS.len() * 4 <= INDEX_SLOTS && COMMANDS.len() < u16::MAX as usize);
    let mut slots = Box::new([0u16; INDEX_SLOTS]);
    for (i, c) in COMMANDS.iter().enumerate() {
        let mut s = name_hash(&NAME_WORDS[i], c.name.len());
        while slots[s] != 0 {
            s = (s + 1) % INDEX_SLOTS;
        }
        slots[s] = i as u16 + 1;
    }
    slots
});

/// Each command's name as [`name_words`] gives it, by index.
static NAME_WORDS: LazyLock<Box<[[u64; NAME_MAX / 8]]>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| name_words(c.name.as_bytes()).expect("command names fit NAME_MAX")).collect());

/// A name lowercased into four little-endian words, zero-padded; `None`
/// when it is longer than any command's.
fn name_words(name: &[u8]) -> Option<[u64; NAME_MAX / 8]> {
    if name.len() > NAME_MAX {
        return None;
    }
    let mut words = [0u64; NAME_MAX / 8];
    for (w, chunk) in words.iter_mut().zip(name.chunks(8)) {
        let word = match <[u8; 8]>::try_from(chunk) {
            Ok(eight) => u64::from_le_bytes(eight),
            Err(_) => chunk.iter().rev().fold(0, |acc, &b| acc << 8 | b as u64),
        };
        *w = ascii_lowercase_word(word);
    }
    Some(words)
}

/// `to_ascii_lowercase` of eight bytes at once: 0x20 added to each byte
/// in `A..=Z` (bytes with the high bit set are left alone).
fn ascii_lowercase_word(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !HIGH;
    // Bit 7 of each byte: at least 'A', and past 'Z' (no carry crosses a
    // byte: a low-7-bit value plus 0x3f stays below 0x100).
    let from_a = low7 + 0x3f3f_3f3f_3f3f_3f3f;
    let past_z = low7 + 0x2525_2525_2525_2525;
    let upper = from_a & !past_z & !w & HIGH;
    w | (upper >> 2)
}

fn name_hash(words: &[u64; NAME_MAX / 8], len: usize) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = len as u64;
    for w in words {
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    (h.wrapping_mul(K) >> (64 - INDEX_SLOTS.trailing_zeros())) as usize
}

/// Finds a command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    let words = name_words(name)?;
    let mut s = name_hash(&words, name.len());
    loop {
        let i = INDEX[s].checked_sub(1)? as usize;
        let c = &COMMANDS[i];
        if c.name.len() == name.len() && NAME_WORDS[i] == words {
            return Some((i, c));
        }
        s = (s + 1) % INDEX_SLOTS;
    }
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
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(lookup(c.name.to_uppercase().as_bytes()).map(|(j, _)| j), Some(i), "{}", c.name);
        }
        // Not commands: prefixes, a trailing NUL, a name padded past any command's.
        for miss in [&b"ge"[..], b"gett", b"get\0", b"", &[b'x'; 40], b"client|list"] {
            assert!(lookup(miss).is_none(), "{:?}", String::from_utf8_lossy(miss));
        }
    }

    #[test]
    fn words_are_lowercased_like_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(8) {
            let w = u64::from_le_bytes(chunk.try_into().unwrap());
            let want: Vec<u8> = chunk.iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(ascii_lowercase_word(w).to_le_bytes().to_vec(), want);
        }
    }

    #[test]
    fn classes_agree_with_flags() {
        for c in COMMANDS {
            assert_eq!(c.class == TenantClass::Data, c.has(WRITE) || c.has(READONLY), "{}", c.name);
            assert_eq!(c.class == TenantClass::Admin, c.has(ADMIN), "{}", c.name);
            assert_eq!(c.class == TenantClass::PubSub, c.has(PUBSUB), "{}", c.name);
        }
    }

    #[test]
    fn the_writes_beyond_their_arguments_are_marked() {
        let marked: Vec<_> = COMMANDS.iter().filter(|c| c.has(BEYOND_ARGS)).map(|c| c.name).collect();
        assert_eq!(marked.len(), super::super::admission::WRITES_BEYOND_ARGS.len(), "{marked:?}");
        for name in super::super::admission::WRITES_BEYOND_ARGS {
            let (_, c) = lookup(name.as_bytes()).unwrap_or_else(|| panic!("{name}: not a command"));
            assert!(c.has(BEYOND_ARGS) && super::super::admission::grows(c), "{name}");
        }
    }

    #[test]
    fn key_positions() {
        let (_, mset) = lookup(b"mset").unwrap();
        assert_eq!(mset.key_indexes(5).collect::<Vec<_>>(), vec![1, 3]);
        let (_, blpop) = lookup(b"blpop").unwrap();
        assert_eq!(blpop.key_indexes(4).collect::<Vec<_>>(), vec![1, 2]);
        let (_, ping) = lookup(b"ping").unwrap();
        assert_eq!(ping.key_indexes(1).count(), 0);
        // Shard channels: Redis's positions for COMMAND, none for dispatch.
        let (_, ssub) = lookup(b"ssubscribe").unwrap();
        assert_eq!((ssub.key_indexes(3).count(), ssub.reported_keys()), (0, (1, -1, 1)));
        let (_, spub) = lookup(b"spublish").unwrap();
        assert_eq!((spub.key_indexes(3).count(), spub.reported_keys()), (0, (1, 1, 1)));
    }

    #[test]
    fn subcommands_are_classified_as_their_container() {
        let mut seen = std::collections::HashSet::new();
        for s in SUBCOMMANDS {
            assert!(seen.insert(s.name), "duplicate {}", s.name);
            assert_eq!(s.name, s.name.to_lowercase());
            let (container, _) = s.name.split_once('|').expect("container|subcommand");
            let (_, parent) = lookup(container.as_bytes()).unwrap_or_else(|| panic!("{}: no container", s.name));
            // Dispatch admits the container's entry: a subcommand's class must be it.
            assert_eq!(s.class, parent.class, "{}", s.name);
            assert_eq!(s.handler as usize, parent.handler as usize, "{}", s.name);
            assert!(s.arity.unsigned_abs() >= 2, "{}", s.name);
            assert!(lookup(s.name.as_bytes()).is_none(), "{} must not be a command", s.name);
        }
        assert_eq!(lookup_subcommand("CLIENT", b"List").map(|s| s.name), Some("client|list"));
        assert!(lookup_subcommand("get", b"x").is_none());
        assert_eq!(subcommands_of("object").count(), 5);
    }
}
