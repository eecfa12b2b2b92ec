//! Geo arithmetic as Redis 7.0 does it, so scores, coordinates, hashes,
//! distances and search results match redis-server to the digit: the
//! 52-bit interleaved geohash kept as a sorted-set score, haversine
//! distances on Redis's Earth radius, the nine-cell search around a shape,
//! and the partial quicksort Redis uses when COUNT cuts a sorted result
//! (its tie order is part of the reply).

use std::cmp::Ordering;

pub const LON_MIN: f64 = -180.0;
pub const LON_MAX: f64 = 180.0;
/// The Mercator limits: latitudes GEOADD accepts and the score grid spans.
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const STEP: u32 = 26;
const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

/// Bit `i` of `v` to bit `2i`.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// The even bits of `v`, gathered (the inverse of [`spread`]).
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// Whether GEOADD and the searches accept a point.
pub fn valid(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// A cell's bits at `step` for a point, latitudes spanning `lat_range`
/// (the top cell's edge sets a bit past the grid, as in Redis).
fn encode(lon: f64, lat: f64, step: u32, lat_range: (f64, f64)) -> u64 {
    let lat_offset = (lat - lat_range.0) / (lat_range.1 - lat_range.0) * (1u64 << step) as f64;
    let lon_offset = (lon - LON_MIN) / (LON_MAX - LON_MIN) * (1u64 << step) as f64;
    spread(lat_offset as u32) | (spread(lon_offset as u32) << 1)
}

/// The score GEOADD stores for a point (checked with [`valid`]).
pub fn score(lon: f64, lat: f64) -> f64 {
    encode(lon, lat, STEP, (LAT_MIN, LAT_MAX)) as f64
}

/// A cell: its bounds.
#[derive(Debug, Clone, Copy)]
struct Area {
    lat_min: f64,
    lat_max: f64,
    lon_min: f64,
    lon_max: f64,
}

fn area(bits: u64, step: u32) -> Area {
    let (ilat, ilon) = (squash(bits), squash(bits >> 1));
    let cells = (1u64 << step) as f64;
    let lat_scale = LAT_MAX - LAT_MIN;
    let lon_scale = LON_MAX - LON_MIN;
    Area {
        lat_min: LAT_MIN + (ilat as f64 / cells) * lat_scale,
        lat_max: LAT_MIN + ((ilat as u64 + 1) as f64 / cells) * lat_scale,
        lon_min: LON_MIN + (ilon as f64 / cells) * lon_scale,
        lon_max: LON_MIN + ((ilon as u64 + 1) as f64 / cells) * lon_scale,
    }
}

/// A score as C's cast of a double to an unsigned 64-bit integer on x86
/// (scores GEOADD wrote are exact integers; others decode as Redis does).
fn score_bits(s: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if s < TWO_63 {
        return s as i64 as u64;
    }
    let t = s - TWO_63;
    if t >= TWO_63 { 0 } else { (t as i64 as u64) ^ (1 << 63) }
}

/// The point a score stands for: its cell's centre, clamped to the grid.
pub fn decode(score: f64) -> (f64, f64) {
    let a = area(score_bits(score), STEP);
    let lon = ((a.lon_min + a.lon_max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat_min + a.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// GEOHASH's 11 characters: the point re-encoded over latitudes -90..90.
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode(score);
    let bits = encode(lon, lat, STEP, (-90.0, 90.0));
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 31) as usize];
    }
    out
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (lat2 * D_R - lat1 * D_R).abs()
}

/// Haversine distance in metres, with Redis's shortcut along a meridian.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((lon2 * D_R - lon1 * D_R) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let u = ((lat2 * D_R - lat1 * D_R) / 2.0).sin();
    let a = u * u + (lat1 * D_R).cos() * (lat2 * D_R).cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// A distance with exactly four decimals, rounded as Redis rounds it.
pub fn format_distance(d: f64) -> String {
    let n = (d * 10000.0).round_ties_even() as i64;
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}.{:04}", n.unsigned_abs() / 10000, n.unsigned_abs() % 10000)
}

/// A coordinate as GEOPOS prints it: 17 decimals, trailing zeros cut.
pub fn format_coord(x: f64) -> String {
    let s = format!("{x:.17}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// What a search looks in.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Radius in metres.
    Radius(f64),
    /// Width and height in metres.
    Box(f64, f64),
}

impl Shape {
    /// The distance from the centre if the point is inside.
    pub fn contains(self, clon: f64, clat: f64, lon: f64, lat: f64) -> Option<f64> {
        match self {
            Shape::Radius(r) => Some(distance(clon, clat, lon, lat)).filter(|&d| d <= r),
            Shape::Box(w, h) => {
                if lat_distance(lat, clat) > h / 2.0 || distance(lon, lat, clon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(clon, clat, lon, lat))
            }
        }
    }

    /// Half the extent north-south and east-west, in metres.
    fn half_extents(self) -> (f64, f64) {
        match self {
            Shape::Radius(r) => (r, r),
            Shape::Box(w, h) => (h / 2.0, w / 2.0),
        }
    }
}

/// The step whose cells are about as large as a search of `m` metres.
fn estimate_step(mut m: f64, clat: f64) -> u32 {
    if m == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while m < MERCATOR_MAX {
        m *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&clat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&clat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u32
}

/// Moves a cell `dlon` east and `dlat` north at `step` (wrapping around).
fn neighbour(bits: u64, step: u32, dlon: i64, dlat: i64) -> u64 {
    let cells = 1u64 << step;
    let (mut ilat, mut ilon) = (squash(bits) as u64, squash(bits >> 1) as u64);
    if dlat != 0 {
        ilat = (ilat as i64 + dlat).rem_euclid(cells as i64) as u64;
    }
    if dlon != 0 {
        ilon = (ilon as i64 + dlon).rem_euclid(cells as i64) as u64;
    }
    spread(ilat as u32) | (spread(ilon as u32) << 1)
}

/// The cells around a centre, in Redis's order (self, N, S, E, W, NE,
/// NW, SE, SW), with their step; `None` marks a cell that cannot hold a
/// point of the shape.
pub fn search_cells(clon: f64, clat: f64, shape: Shape) -> (u32, [Option<u64>; 9]) {
    let (hm, wm) = shape.half_extents();
    let lat_delta = (hm / EARTH_RADIUS_M) / D_R;
    let dtop = ((wm / EARTH_RADIUS_M) / ((clat + lat_delta) * D_R).cos()) / D_R;
    let dbot = ((wm / EARTH_RADIUS_M) / ((clat - lat_delta) * D_R).cos()) / D_R;
    let dlon = if clat < 0.0 { dbot } else { dtop };
    let (min_lon, max_lon, min_lat, max_lat) = (clon - dlon, clon + dlon, clat - lat_delta, clat + lat_delta);
    let radius_m = match shape {
        Shape::Radius(r) => r,
        Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
    };
    let mut step = estimate_step(radius_m, clat);
    let moves = [(0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)];
    let cells_at = |step: u32| {
        let hash = encode(clon, clat, step, (LAT_MIN, LAT_MAX));
        moves.map(|(dx, dy)| neighbour(hash, step, dx, dy))
    };
    let mut cells = cells_at(step);
    let (n, s, e, w) = (area(cells[1], step), area(cells[2], step), area(cells[3], step), area(cells[4], step));
    let decrease = n.lat_max < max_lat || s.lat_min > min_lat || e.lon_max < max_lon || w.lon_min > min_lon;
    if step > 1 && decrease {
        step -= 1;
        cells = cells_at(step);
    }
    let mut keep = [true; 9];
    if step >= 2 {
        let a = area(cells[0], step);
        let mut drop = |which: &[usize]| which.iter().for_each(|&i| keep[i] = false);
        if a.lat_min < min_lat {
            drop(&[2, 7, 8]);
        }
        if a.lat_max > max_lat {
            drop(&[1, 5, 6]);
        }
        if a.lon_min < min_lon {
            drop(&[4, 8, 6]);
        }
        if a.lon_max > max_lon {
            drop(&[3, 7, 5]);
        }
    }
    let mut out = [None; 9];
    for i in 0..9 {
        out[i] = keep[i].then_some(cells[i]);
    }
    (step, out)
}

/// The scores a cell covers: `lo <= score < hi`.
pub fn cell_scores(bits: u64, step: u32) -> (f64, f64) {
    let shift = 52 - 2 * step;
    ((bits << shift) as f64, ((bits + 1) << shift) as f64)
}

/// Redis's partial quicksort: sorts enough of `v` that `lo..=hi` holds
/// what a full sort would put there, in the order Redis's would (ties
/// included, which a stable sort would order differently).
pub fn partial_sort<T>(v: &mut [T], lo: usize, hi: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    pqsort(v, 0, v.len(), lo, hi, cmp);
}

fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &impl Fn(&T, &T) -> Ordering) -> usize {
    if cmp(&v[a], &v[b]) == Ordering::Less {
        if cmp(&v[b], &v[c]) == Ordering::Less {
            b
        } else if cmp(&v[a], &v[c]) == Ordering::Less {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) == Ordering::Greater {
        b
    } else if cmp(&v[a], &v[c]) == Ordering::Less {
        a
    } else {
        c
    }
}

fn swap_blocks<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

/// Bentley and McIlroy's three-way quicksort over `v[a..a + n]`, only
/// descending into parts that overlap `lo..=hi`.
fn pqsort<T>(v: &mut [T], mut a: usize, mut n: usize, lo: usize, hi: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    loop {
        if n < 7 {
            for m in a + 1..a + n {
                let mut l = m;
                while l > a && cmp(&v[l - 1], &v[l]) == Ordering::Greater {
                    v.swap(l, l - 1);
                    l -= 1;
                }
            }
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let (mut pl, mut pn) = (a, a + n - 1);
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(a, pm);
        let (mut pa, mut pb, mut pc, mut pd) = (a + 1, a + 1, a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[a]);
                if c == Ordering::Greater {
                    break;
                }
                if c == Ordering::Equal {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[a]);
                if c == Ordering::Less {
                    break;
                }
                if c == Ordering::Equal {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        swap_blocks(v, a, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        swap_blocks(v, pb, pn - r, r);
        let overlaps = |s: usize, len: usize| !(hi < s || lo > s + len - 1);
        let left = pb - pa;
        if left > 1 && overlaps(a, left) {
            pqsort(v, a, left, lo, hi, cmp);
        }
        let right = pd - pc;
        if right > 1 && overlaps(pn - right, right) {
            a = pn - right;
            n = right;
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_positions_match_redis() {
        // Captured from redis-server 7.0.15.
        assert_eq!(score(13.361389, 38.115556), 3479099956230698.0);
        assert_eq!(score(15.087269, 37.502669), 3479447370796909.0);
        let (lon, lat) = decode(3479099956230698.0);
        assert_eq!((format_coord(lon), format_coord(lat)), ("13.36138933897018433".into(), "38.11555639549629859".into()));
        assert_eq!(&geohash_string(3479099956230698.0), b"sqc8b49rny0");
        assert_eq!(&geohash_string(score(180.0, 0.0)), b"80000000000");
        assert_eq!(score(180.0, 85.05112878), 13510798882111488.0);
        assert_eq!(format_coord(decode(score(1.0, 2.0)).0), "0.99999994039535522");
    }

    #[test]
    fn distances_match_redis() {
        let (a, b) = (decode(3479099956230698.0), decode(3479447370796909.0));
        let d = distance(a.0, a.1, b.0, b.1);
        assert_eq!(format_distance(d), "166274.1516");
        assert_eq!(format_distance(d / 1000.0), "166.2742");
        assert_eq!(format_distance(d / 1609.34), "103.3182");
        assert_eq!(format_distance(0.0), "0.0000");
    }

    #[test]
    fn the_partial_sort_sorts_the_wanted_window() {
        let mut v: Vec<u32> = (0..200).map(|i| (i * 7919) % 211).collect();
        let mut full = v.clone();
        full.sort();
        partial_sort(&mut v, 0, 9, &|a: &u32, b: &u32| a.cmp(b));
        assert_eq!(v[..10], full[..10]);
        let mut w: Vec<u32> = (0..200).map(|i| (i * 31) % 97).collect();
        let mut all = w.clone();
        all.sort();
        partial_sort(&mut w, 0, 199, &|a: &u32, b: &u32| a.cmp(b));
        assert_eq!(w, all);
    }
}
