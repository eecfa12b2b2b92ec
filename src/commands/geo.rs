//! Geo commands: points kept in a sorted set by their 52-bit geohash
//! (`store::geo`), as Redis keeps them, so a geo key is a sorted set to
//! every other command.

use std::cmp::Ordering;

use super::args::{int, is, parse_f64};
use super::notify::ZSET;
use super::zsets::as_zset;
use super::{CmdError, CmdResult, Ctx};
use crate::protocol::Out;
use crate::store::geo::{self, Shape};
use crate::store::zset::ScoreBound;
use crate::store::{Value, ZSetValue};

fn float(a: &[u8], err: &str) -> Result<f64, CmdError> {
    parse_f64(a).ok_or_else(|| CmdError::err(err))
}

/// C's `%f`: six decimals, `inf` and `-inf` spelled out.
fn c_f(x: f64) -> String {
    if x.is_infinite() { if x > 0.0 { "inf".into() } else { "-inf".into() } } else { format!("{x:.6}") }
}

/// A longitude and latitude, parsed and checked.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let (lon, lat) = (parse_f64(lon).ok_or(CmdError::NotFloat)?, parse_f64(lat).ok_or(CmdError::NotFloat)?);
    if !geo::valid(lon, lat) {
        return Err(CmdError::err(format!("invalid longitude,latitude pair {},{}", c_f(lon), c_f(lat))));
    }
    Ok((lon, lat))
}

/// Metres per unit.
fn unit(a: &[u8]) -> Result<f64, CmdError> {
    Ok(match a.to_ascii_lowercase().as_slice() {
        b"m" => 1.0,
        b"km" => 1000.0,
        b"ft" => 0.3048,
        b"mi" => 1609.34,
        _ => return Err(CmdError::err("unsupported unit provided. please use M, KM, FT, MI")),
    })
}

pub fn geoadd(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut i = 2;
    while i < a.len() {
        match a[i].to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"ch" => ch = true,
            _ => break,
        }
        i += 1;
    }
    let triples = &a[i..];
    if triples.is_empty() || !triples.len().is_multiple_of(3) || (nx && xx) {
        return Err(CmdError::Syntax);
    }
    let points =
        triples.chunks(3).map(|t| lon_lat(t[0], t[1]).map(|(lon, lat)| (geo::score(lon, lat), t[2]))).collect::<Result<Vec<_>, _>>()?;
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| -> Result<(usize, bool), CmdError> {
        match slot.value() {
            Some(v) => drop(as_zset(v)?),
            None if xx => return Ok((0, false)),
            None => drop(slot.set(Value::ZSet(Box::default()))),
        }
        let Some(Value::ZSet(z)) = slot.value_mut() else { unreachable!("checked sorted set") };
        let (mut changed, mut any) = (0, false);
        for (score, member) in points {
            let (old, new) = z
                .upsert(member, |cur| {
                    Ok::<_, std::convert::Infallible>(match cur {
                        Some(_) if nx => None,
                        None if xx => None,
                        _ => Some(score),
                    })
                })
                .unwrap_or_else(|never| match never {});
            changed += match (old, new) {
                (None, Some(_)) => 1,
                (Some(o), Some(n)) if ch && o != n => 1,
                _ => 0,
            };
            any |= matches!((old, new), (None, Some(_))) || matches!((old, new), (Some(o), Some(n)) if o != n);
        }
        Ok((changed, any))
    })?;
    let (n, any) = n;
    // GEOADD is ZADD in Redis, and announces itself as one.
    if any {
        ctx.notify(ZSET, "zadd", a[1]);
    }
    ctx.reply_changed(n);
    Ok(())
}

/// The point of `member` in the geo set, if there.
fn member_point(z: &ZSetValue, member: &[u8]) -> Option<(f64, f64)> {
    z.score(member).map(geo::decode)
}

pub fn geodist(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let per_unit = match a.len() {
        4 => 1.0,
        5 => unit(a[4])?,
        _ => return Err(CmdError::Syntax),
    };
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.read(a[1], ctx.now_ms, ctx.touch, |e| -> CmdResult {
        let z = as_zset(&e.value)?;
        match (member_point(z, a[2]), member_point(z, a[3])) {
            (Some(p), Some(q)) => out.bulk(geo::format_distance(geo::distance(p.0, p.1, q.0, q.1) / per_unit).as_bytes()),
            _ => out.null(),
        }
        Ok(())
    });
    ctx.looked_up(a[1], found.is_some());
    found.unwrap_or_else(|| {
        ctx.out.null();
        Ok(())
    })
}

fn reply_coord(out: &mut Out, x: f64) {
    if out.resp3 {
        // RESP3's double, written with the same digits as RESP2's string.
        out.buf.extend_from_slice(format!(",{}\r\n", geo::format_coord(x)).as_bytes());
    } else {
        out.bulk(geo::format_coord(x).as_bytes());
    }
}

pub fn geopos(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let points = read_members(ctx, a, member_point)?;
    ctx.out.array(points.len());
    for p in points {
        match p {
            Some((lon, lat)) => {
                ctx.out.array(2);
                reply_coord(ctx.out, lon);
                reply_coord(ctx.out, lat);
            }
            None => ctx.out.null_array(),
        }
    }
    Ok(())
}

pub fn geohash(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let hashes = read_members(ctx, a, |z, m| z.score(m).map(geo::geohash_string))?;
    ctx.out.array(hashes.len());
    for h in hashes {
        match h {
            Some(h) => ctx.out.bulk(&h),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

/// `f` of each member named after the key (a missing key has none).
fn read_members<T>(ctx: &Ctx, a: &[&[u8]], f: impl Fn(&ZSetValue, &[u8]) -> Option<T>) -> Result<Vec<Option<T>>, CmdError> {
    let found =
        ctx.db().read(a[1], ctx.now_ms, ctx.touch, |e| as_zset(&e.value).map(|z| a[2..].iter().map(|m| f(z, m)).collect::<Vec<_>>()));
    ctx.looked_up(a[1], found.is_some());
    let found = found.transpose()?;
    Ok(found.unwrap_or_else(|| a[2..].iter().map(|_| None).collect()))
}

/// Which command of the search family runs (they share one parser).
#[derive(Clone, Copy, PartialEq)]
enum Family {
    Radius,
    RadiusByMember,
    Search,
    SearchStore,
}

/// Where a search starts: a point, or a member of a set that does not
/// exist (nothing to resolve it against; the reply is empty).
enum From {
    Point(f64, f64),
    Unresolved,
}

struct Query {
    from: Option<From>,
    shape: Option<(Shape, f64)>,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    sort: Option<bool>,
    count: Option<usize>,
    any: bool,
    store: Option<Vec<u8>>,
    store_dist: bool,
}

fn radius_arg(r: &[u8], u: &[u8]) -> Result<(Shape, f64), CmdError> {
    let r = float(r, "need numeric radius")?;
    if r < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    let per = unit(u)?;
    Ok((Shape::Radius(r * per), per))
}

fn box_arg(w: &[u8], h: &[u8], u: &[u8]) -> Result<(Shape, f64), CmdError> {
    let w = float(w, "need numeric width")?;
    let h = float(h, "need numeric height")?;
    if w < 0.0 || h < 0.0 {
        return Err(CmdError::err("height or width cannot be negative"));
    }
    let per = unit(u)?;
    Ok((Shape::Box(w * per, h * per), per))
}

/// Parses a search's arguments as Redis does, in its order; `z` is the
/// source set when it exists (members named by the search are resolved
/// only then). `Err(None)`: the source is missing and the reply is empty.
fn parse_query(a: &[&[u8]], fam: Family, z: Option<&ZSetValue>) -> Result<Query, CmdError> {
    let mut q = Query {
        from: None,
        shape: None,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        sort: None,
        count: None,
        any: false,
        store: None,
        store_dist: false,
    };
    let resolve = |m: &[u8]| -> Result<Option<(f64, f64)>, CmdError> {
        match z {
            Some(z) => member_point(z, m).map(Some).ok_or_else(|| CmdError::err("could not decode requested zset member")),
            None => Ok(None),
        }
    };
    let mut i = match fam {
        Family::Radius => {
            let (lon, lat) = lon_lat(a[2], a[3])?;
            q.from = Some(From::Point(lon, lat));
            q.shape = Some(radius_arg(a[4], a[5])?);
            6
        }
        Family::RadiusByMember => {
            if z.is_some() {
                let (lon, lat) = resolve(a[2])?.expect("the set exists");
                q.from = Some(From::Point(lon, lat));
                q.shape = Some(radius_arg(a[3], a[4])?);
            } else {
                q.from = Some(From::Unresolved);
            }
            5
        }
        Family::Search => 2,
        Family::SearchStore => 3,
    };
    let search = matches!(fam, Family::Search | Family::SearchStore);
    let (mut from_member, mut from_point, mut by_radius, mut by_box) = (false, false, false, false);
    let read_only = super::args::lower(a[0]).ends_with("_ro");
    while i < a.len() {
        let more = a.len() - i - 1;
        let o = a[i];
        if is(o, "withdist") {
            q.with_dist = true;
        } else if is(o, "withhash") {
            q.with_hash = true;
        } else if is(o, "withcoord") {
            q.with_coord = true;
        } else if is(o, "any") {
            q.any = true;
        } else if is(o, "asc") {
            q.sort = Some(true);
        } else if is(o, "desc") {
            q.sort = Some(false);
        } else if is(o, "count") && more > 0 {
            let n = int(a[i + 1])?;
            if n <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            q.count = Some(n as usize);
            i += 1;
        } else if !search && !read_only && (is(o, "store") || is(o, "storedist")) && more > 0 {
            q.store = Some(a[i + 1].to_vec());
            q.store_dist = is(o, "storedist");
            i += 1;
        } else if fam == Family::SearchStore && is(o, "storedist") {
            q.store_dist = true;
        } else if search && is(o, "frommember") && more > 0 && !from_point {
            q.from = Some(match resolve(a[i + 1])? {
                Some((lon, lat)) => From::Point(lon, lat),
                None => From::Unresolved,
            });
            from_member = true;
            i += 1;
        } else if search && is(o, "fromlonlat") && more > 1 && !from_member {
            let (lon, lat) = lon_lat(a[i + 1], a[i + 2])?;
            q.from = Some(From::Point(lon, lat));
            from_point = true;
            i += 2;
        } else if search && is(o, "byradius") && more > 1 && !by_box {
            q.shape = Some(radius_arg(a[i + 1], a[i + 2])?);
            by_radius = true;
            i += 2;
        } else if search && is(o, "bybox") && more > 2 && !by_radius {
            q.shape = Some(box_arg(a[i + 1], a[i + 2], a[i + 3])?);
            by_box = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if fam == Family::SearchStore {
        q.store = Some(a[1].to_vec());
    }
    if q.store.is_some() && (q.with_dist || q.with_hash || q.with_coord) {
        return Err(CmdError::err(if fam == Family::SearchStore {
            "GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        } else {
            "STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        }));
    }
    let name = String::from_utf8_lossy(a[0]);
    if search && !(from_member || from_point) {
        return Err(CmdError::err(format!("exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")));
    }
    if search && !(by_radius || by_box) {
        return Err(CmdError::err(format!("exactly one of BYRADIUS and BYBOX can be specified for {name}")));
    }
    if q.any && q.count.is_none() {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }
    Ok(q)
}

/// One point found: member, distance from the centre (metres), score.
struct Found {
    member: Vec<u8>,
    dist: f64,
    score: f64,
}

/// The members inside the shape, in the order Redis finds them: cell by
/// cell (self, then the neighbours), each cell in score order.
fn find(z: &ZSetValue, clon: f64, clat: f64, shape: Shape, any_limit: usize) -> Vec<Found> {
    let (step, cells) = geo::search_cells(clon, clat, shape);
    let mut found = Vec::new();
    let mut last: Option<u64> = None;
    for cell in cells.into_iter().flatten() {
        if last == Some(cell) {
            continue;
        }
        if any_limit > 0 && found.len() >= any_limit {
            break;
        }
        let (lo, hi) = geo::cell_scores(cell, step);
        for (m, score) in z.range_by_score(ScoreBound { value: lo, exclusive: false }, ScoreBound { value: hi, exclusive: true }) {
            let (lon, lat) = geo::decode(score);
            if let Some(dist) = shape.contains(clon, clat, lon, lat) {
                found.push(Found { member: m.to_vec(), dist, score });
            }
            if any_limit > 0 && found.len() >= any_limit {
                break;
            }
        }
        last = Some(cell);
    }
    found
}

/// Sorts and cuts the result as Redis does (COUNT without ASC/DESC sorts
/// ascending unless ANY; a cut sort uses Redis's partial quicksort).
fn order(found: &mut Vec<Found>, q: &Query) {
    let sort = q.sort.or_else(|| (q.count.is_some() && !q.any).then_some(true));
    let keep = q.count.unwrap_or(usize::MAX).min(found.len());
    if let Some(asc) = sort {
        let cmp = |x: &Found, y: &Found| {
            let c = x.dist.partial_cmp(&y.dist).unwrap_or(Ordering::Equal);
            if asc { c } else { c.reverse() }
        };
        if keep == found.len() {
            found.sort_by(cmp);
        } else if keep > 0 {
            geo::partial_sort(found, 0, keep - 1, &cmp);
        }
    }
    found.truncate(keep);
}

fn search(ctx: &mut Ctx, a: &[&[u8]], fam: Family) -> CmdResult {
    let src = if fam == Family::SearchStore { a[2] } else { a[1] };
    let (db, now, touch) = (ctx.db(), ctx.now_ms, ctx.touch);
    let searched = db.read(src, now, touch, |e| -> Result<(Query, Vec<Found>), CmdError> {
        let z = as_zset(&e.value)?;
        let q = parse_query(a, fam, Some(z))?;
        let (Some(From::Point(lon, lat)), Some((shape, _))) = (&q.from, q.shape) else { unreachable!("checked by the parser") };
        let mut found = find(z, *lon, *lat, shape, if q.any { q.count.unwrap_or(0) } else { 0 });
        order(&mut found, &q);
        Ok((q, found))
    });
    ctx.looked_up(src, searched.is_some());
    let (q, found) = match searched {
        Some(r) => r?,
        None => (parse_query(a, fam, None)?, Vec::new()),
    };
    match &q.store {
        Some(dest) => store(ctx, dest, &q, found, if fam == Family::SearchStore { "geosearchstore" } else { "georadiusstore" }),
        None => {
            reply_found(ctx.out, &q, &found);
            Ok(())
        }
    }
}

fn reply_found(out: &mut Out, q: &Query, found: &[Found]) {
    let per = q.shape.map_or(1.0, |(_, per)| per);
    let extras = q.with_dist as usize + q.with_hash as usize + q.with_coord as usize;
    out.array(found.len());
    for f in found {
        if extras == 0 {
            out.bulk(&f.member);
            continue;
        }
        out.array(1 + extras);
        out.bulk(&f.member);
        if q.with_dist {
            out.bulk(geo::format_distance(f.dist / per).as_bytes());
        }
        if q.with_hash {
            out.int(f.score as i64);
        }
        if q.with_coord {
            let (lon, lat) = geo::decode(f.score);
            out.array(2);
            reply_coord(out, lon);
            reply_coord(out, lat);
        }
    }
}

/// STORE, STOREDIST, GEOSEARCHSTORE: the result as a sorted set (scores,
/// or distances in the unit); an empty result deletes the destination.
fn store(ctx: &mut Ctx, dest: &[u8], q: &Query, found: Vec<Found>, event: &str) -> CmdResult {
    let per = q.shape.map_or(1.0, |(_, per)| per);
    let mut z = ZSetValue::default();
    for f in &found {
        z.insert(&f.member, if q.store_dist { f.dist / per } else { f.score });
    }
    let n = found.len();
    ctx.store_or_delete(dest, (n > 0).then(|| Value::ZSet(Box::new(z))), ZSET, event);
    ctx.out.int(n as i64);
    Ok(())
}

/// The STORE/STOREDIST key of a GEORADIUS command (the last one wins), for
/// admission: the table cannot place it.
pub fn store_key<'a>(a: &[&'a [u8]]) -> Option<&'a [u8]> {
    let start = if super::args::lower(a[0]).starts_with("georadiusbymember") { 5 } else { 6 };
    let mut key = None;
    let mut i = start;
    while i + 1 < a.len() {
        if is(a[i], "store") || is(a[i], "storedist") {
            key = Some(a[i + 1]);
            i += 1;
        }
        i += 1;
    }
    key
}

pub fn georadius(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    search(ctx, a, Family::Radius)
}

pub fn georadiusbymember(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    search(ctx, a, Family::RadiusByMember)
}

pub fn geosearch(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    search(ctx, a, Family::Search)
}

pub fn geosearchstore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    search(ctx, a, Family::SearchStore)
}
