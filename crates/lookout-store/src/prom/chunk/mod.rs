//! The compressed chunk of one series over one block: Gorilla encoding as in Facebook's paper and
//! Prometheus's TSDB (delta-of-delta timestamps in variable bit widths, values XOR'd with the
//! previous one), plus a decimal value encoding for the values most metrics have: whole numbers
//! (counters) and numbers with few decimals (gauges such as `0.25`), whose XOR is long because a
//! decimal fraction has no short binary form.
//!
//! Hand-written rather than taken from a crate: the Rust Gorilla crates found (`tsz`,
//! `gorilla-tsc`) take unsigned *second* timestamps or are unmaintained, and Prometheus needs
//! signed millisecond timestamps and every f64 bit pattern back exactly (NaN payloads, the
//! staleness marker, -0.0). Both encodings are lossless by construction: XOR of bit patterns
//! trivially, and a decimal value is only written as one when dividing it back gives the very
//! same bits (anything else is escaped and written raw).
//!
//! Layout (version 1): a version byte (1), a mode byte (0 XOR, 1 decimal deltas, 2 decimal
//! delta-of-deltas), for decimal modes a scale byte `e` (values are `m / 10^e`), the sample
//! count (LEB128), then a bit stream with, per sample, the timestamp's delta-of-delta (the first
//! sample's is its time, the second's its delta) in buckets `'0' | '10'+7 | '110'+14 |
//! '1110'+20 | '1111'+64` bits, and the value:
//! - XOR: `'0'` same as before | `'10'` + bits within the previous window | `'11'` + 5-bit
//!   leading zeros + 6-bit length + bits;
//! - decimal: the integer `m`'s delta (or delta-of-delta) in buckets `'0' | '10'+4 | '110'+8 |
//!   '1110'+16 | '11110'+32 | '111110'+64`, or `'111111'` + the raw 64 bits of a value that is
//!   not a decimal at this scale (NaN, the staleness marker, -0.0, 1/3, …).
//!
//! The encoder prices every mode with a bit counter and writes the smallest, so a chunk is never
//! larger than XOR alone would make it (one byte of header aside). Version 0 chunks (no version
//! byte) are still read ([`legacy`]).

mod bits;
mod legacy;

use bits::{BitCount, BitReader, BitSink, BitWriter, Code, IntCode, XorWindow};

/// Most samples in one chunk (more are cut off; a two-hour block holds at most 7,200,000).
pub const MAX_SAMPLES: usize = u32::MAX as usize;

/// The version byte of the current layout.
const VERSION: u8 = 1;

/// Timestamp delta-of-deltas: a 7-bit bucket for scrape jitter of a few ms, then Prometheus's.
const TIME: IntCode = IntCode {
    widths: &[0, 7, 14, 20, 64],
    escape: false,
};

/// Decimal value differences, with an escape for values that are not decimals.
const DECIMAL: IntCode = IntCode {
    widths: &[0, 4, 8, 16, 32, 64],
    escape: true,
};

/// Largest decimal scale tried: `10^15` is exact in an f64, and a value needing more digits is
/// rarely a decimal someone wrote.
const MAX_SCALE: usize = 15;

/// Decimal integers stay within ±2^53, where every integer is exact in an f64.
const MAX_DECIMAL: f64 = 9_007_199_254_740_992.0;

const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// How a chunk's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Gorilla's XOR with the previous value.
    Xor,
    /// `value * 10^scale` as an integer, each written as its difference from the previous one
    /// (`order` 1: steady gauges, counters growing irregularly) or as the difference of those
    /// differences (`order` 2: counters growing at a steady rate).
    Decimal { scale: u8, order: u8 },
}

/// `v` as the integer `m` with `m / 10^scale == v` bit for bit, if there is one.
fn at_scale(v: u64, scale: usize) -> Option<i64> {
    let f = f64::from_bits(v);
    let p = *POW10.get(scale)?;
    let m = (f * p).round();
    if !m.is_finite() || m.abs() > MAX_DECIMAL {
        return None;
    }
    let m = m as i64;
    ((m as f64 / p).to_bits() == v).then_some(m)
}

/// The smallest scale at which `v` is a decimal.
fn scale_of(v: u64) -> Option<usize> {
    if !f64::from_bits(v).is_finite() {
        return None;
    }
    (0..=MAX_SCALE).find(|&e| at_scale(v, e).is_some())
}

/// Writes the bit stream of `samples` in `mode`.
fn stream(samples: &[(i64, u64)], mode: Mode, w: &mut impl BitSink) {
    let (mut prev_t, mut prev_delta) = (0i64, 0i64);
    // XOR state: previous value bits and the window of meaningful bits.
    let (mut prev_v, mut window) = (0u64, XorWindow::writer());
    // Decimal state: previous integer and difference, and how many were written.
    let (mut prev_m, mut prev_d, mut coded) = (0i64, 0i64, 0usize);
    for (i, &(t, v)) in samples.iter().enumerate() {
        let delta = t.wrapping_sub(prev_t);
        TIME.put(delta.wrapping_sub(prev_delta), w);
        prev_t = t;
        // The first delta is the time itself: the second sample is written as a plain delta.
        prev_delta = if i == 0 { 0 } else { delta };
        match mode {
            Mode::Xor => {
                window.put(v ^ prev_v, w);
                prev_v = v;
            }
            Mode::Decimal { scale, order } => match at_scale(v, usize::from(scale)) {
                Some(m) => {
                    let d = m.wrapping_sub(prev_m);
                    DECIMAL.put(
                        if order == 1 {
                            d
                        } else {
                            d.wrapping_sub(prev_d)
                        },
                        w,
                    );
                    prev_d = if coded == 0 { 0 } else { d };
                    prev_m = m;
                    coded += 1;
                }
                None => {
                    DECIMAL.put_escape(w);
                    w.bits(v, 64);
                }
            },
        }
    }
}

/// Which layout a chunk is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Version 0, XOR only: what Lookout versions before the version byte read. Written while
    /// such a replica is still live (a rolling upgrade), so it can read and merge every chunk.
    V0,
    /// Version 1 (this module's layout).
    V1,
}

/// Encodes samples sorted by time (at most [`MAX_SAMPLES`]; more are cut off) in the current
/// layout, in whichever mode is smallest.
pub fn encode(samples: &[(i64, u64)]) -> Vec<u8> {
    encode_as(samples, Layout::V1)
}

/// [`encode`] in `layout`.
pub fn encode_as(samples: &[(i64, u64)], layout: Layout) -> Vec<u8> {
    let samples = &samples[..samples.len().min(MAX_SAMPLES)];
    if layout == Layout::V0 {
        return legacy::encode(samples);
    }
    let mut modes = vec![Mode::Xor];
    // The scale that makes every decimal value an integer; the rest will be escaped.
    if let Some(scale) = samples.iter().filter_map(|&(_, v)| scale_of(v)).max() {
        let scale = scale as u8;
        modes.push(Mode::Decimal { scale, order: 1 });
        modes.push(Mode::Decimal { scale, order: 2 });
    }
    let price = |mode: Mode| {
        let mut c = BitCount::default();
        stream(samples, mode, &mut c);
        c.0
    };
    let mode = modes
        .into_iter()
        .map(|m| (price(m), m))
        .min_by_key(|(bits, _)| *bits)
        .map_or(Mode::Xor, |(_, m)| m);
    let mut header = Vec::with_capacity(16 + samples.len() * 2);
    header.push(VERSION);
    match mode {
        Mode::Xor => header.push(0),
        Mode::Decimal { scale, order } => {
            header.push(order);
            header.push(scale);
        }
    }
    put_varint(&mut header, samples.len());
    let mut w = BitWriter::new(header);
    stream(samples, mode, &mut w);
    w.finish()
}

/// Appends `n` as an unsigned LEB128 varint (a chunk's sample count, a tier row's column sizes).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads what [`put_varint`] wrote from the front of `rest`, moving past it; `None` when the
/// bytes end first or the number does not fit.
pub(crate) fn take_varint(rest: &mut &[u8]) -> Option<usize> {
    let mut n = 0usize;
    for shift in (0..).step_by(7) {
        let (&byte, r) = rest.split_first()?;
        *rest = r;
        if shift > 56 {
            return None;
        }
        n |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    Some(n)
}

/// Decodes a chunk of any version into (time ms, value bits); `None` if it is damaged.
pub fn decode(data: &[u8]) -> Option<Vec<(i64, u64)>> {
    match *data.first()? {
        0 => legacy::decode(data),
        VERSION => decode_v1(data.get(1..)?),
        _ => None,
    }
}

fn decode_v1(data: &[u8]) -> Option<Vec<(i64, u64)>> {
    let (mode, mut rest) = match data.split_first()? {
        (0, rest) => (Mode::Xor, rest),
        (&order @ (1 | 2), rest) => {
            let (&scale, rest) = rest.split_first()?;
            if usize::from(scale) > MAX_SCALE {
                return None;
            }
            (Mode::Decimal { scale, order }, rest)
        }
        _ => return None,
    };
    let n = take_varint(&mut rest)?;
    let mut r = BitReader::new(rest);
    // Each sample takes at least 2 bits: a damaged count cannot reserve more than the data.
    if n > r.left() / 2 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let (mut t, mut delta) = (0i64, 0i64);
    let (mut v, mut window) = (0u64, XorWindow::reader());
    let (mut m, mut d, mut coded) = (0i64, 0i64, 0usize);
    for i in 0..n {
        let Code::Int(dod) = TIME.get(&mut r)? else {
            return None;
        };
        delta = if i == 1 { dod } else { delta.wrapping_add(dod) };
        t = t.wrapping_add(delta);
        match mode {
            Mode::Xor => v ^= window.get(&mut r)?,
            Mode::Decimal { scale, order } => match DECIMAL.get(&mut r)? {
                Code::Escape => v = r.bits(64)?,
                Code::Int(x) => {
                    let step = if order == 1 { x } else { d.wrapping_add(x) };
                    d = if coded == 0 { 0 } else { step };
                    m = m.wrapping_add(step);
                    coded += 1;
                    v = (m as f64 / POW10.get(usize::from(scale))?).to_bits();
                }
            },
        }
        out.push((t, v));
    }
    Some(out)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &[(i64, u64)]) -> usize {
        let e = encode(s);
        assert_eq!(decode(&e).unwrap(), s);
        e.len()
    }

    fn regular(n: i64, value: impl Fn(i64) -> f64) -> Vec<(i64, u64)> {
        (0..n)
            .map(|i| (1_700_000_000_000 + i * 15_000, value(i).to_bits()))
            .collect()
    }

    #[test]
    fn every_bit_pattern_and_timestamp_comes_back() {
        round_trip(&[]);
        round_trip(&[(5, 1)]);
        let specials = [
            f64::NAN.to_bits(),
            0x7ff0_0000_0000_0002, // Prometheus's stale marker
            (-0.0f64).to_bits(),
            f64::INFINITY.to_bits(),
            f64::MIN_POSITIVE.to_bits(),
            u64::MAX,
            0,
            1.5f64.to_bits(),
            (1.0f64 / 3.0).to_bits(),
            9_007_199_254_740_993.0f64.to_bits(),
            1e300f64.to_bits(),
        ];
        let s: Vec<(i64, u64)> = specials
            .iter()
            .enumerate()
            .map(|(i, &v)| (-1000 + i as i64 * 15_000, v))
            .collect();
        round_trip(&s);
        // Irregular intervals in every bucket, backwards jumps and huge gaps.
        let ts = [
            0,
            15_000,
            15_001,
            30_000,
            100_000,
            1_000_000,
            999_000,
            i64::MAX / 2,
            -5,
            i64::MIN,
            i64::MAX,
        ];
        let s: Vec<(i64, u64)> = ts
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, (i as f64 * 0.1).to_bits()))
            .collect();
        round_trip(&s);
    }

    #[test]
    fn decimal_series_with_stale_markers_and_odd_values_come_back() {
        // A counter with a reset, a staleness marker, NaN, -0.0 and a value that is no
        // decimal: the odd ones are escaped, the rest stay decimal.
        let mut s = regular(200, |i| (i * 37 % 1000) as f64 + 0.25);
        s[50].1 = 0x7ff0_0000_0000_0002;
        s[51].1 = f64::NAN.to_bits();
        s[52].1 = (-0.0f64).to_bits();
        s[53].1 = (2.0f64 / 3.0).to_bits();
        s[54].1 = 0;
        s[120].1 = i64::MAX as f64 as u64;
        let bytes = round_trip(&s);
        assert_ne!(encode(&s)[1], 0, "still written as decimals");
        assert!(bytes < 3 * 200, "{bytes} bytes for 200 samples");
    }

    #[test]
    fn counters_and_decimal_gauges_take_about_a_byte_per_sample() {
        // A counter growing by whole numbers, a gauge in steps of 0.01 and a constant: the
        // shapes of node_exporter's series. XOR takes 2–6 bytes on the gauge.
        let counter = regular(480, |i| (1_000_000 + i * i % 97 + i * 50) as f64);
        let gauge = regular(480, |i| ((i * 7 % 13) as f64 + 10_000.0) / 100.0);
        let constant = regular(480, |_| 1.0);
        let sizes = [
            round_trip(&counter),
            round_trip(&gauge),
            round_trip(&constant),
        ];
        for (bytes, limit) in sizes.iter().zip([1.6, 1.0, 0.3]) {
            assert!(
                (*bytes as f64) < limit * 480.0,
                "{sizes:?} bytes for 480 samples each"
            );
        }
        let steady = regular(480, |i| (i * 1000) as f64);
        assert_eq!(
            encode(&steady)[1],
            2,
            "a steady counter takes delta-of-deltas"
        );
        assert!(round_trip(&steady) < 140, "two bits a sample");
    }

    #[test]
    fn version_0_chunks_still_read() {
        let s = regular(300, |i| (i as f64).sqrt());
        let old = encode_as(&s, Layout::V0);
        assert_eq!(old[0], 0);
        assert_eq!(decode(&old).unwrap(), s);
        assert_eq!(decode(&legacy::encode(&[])).unwrap(), vec![]);
        // Never larger than XOR was (one header byte aside), on values that are no decimals.
        assert!(encode(&s).len() <= old.len() + 1);
    }

    #[test]
    fn damaged_chunks_are_refused_not_panicked_on() {
        let s: Vec<(i64, u64)> = (0..50)
            .map(|i| (i * 1000, ((i as f64) * 0.5).to_bits()))
            .collect();
        for e in [encode(&s), legacy::encode(&s)] {
            for cut in 0..e.len() {
                let _ = decode(&e[..cut]);
            }
            for i in 0..e.len() {
                let mut d = e.clone();
                d[i] ^= 0x5a;
                let _ = decode(&d);
            }
        }
        assert!(decode(&[]).is_none());
        assert!(decode(&[0, 0xff, 0xff, 0xff, 0]).is_none());
        // A version from the future, an unknown mode, a count past the data, a huge scale.
        assert!(decode(&[7, 0, 1, 0]).is_none());
        assert!(decode(&[1, 9, 1, 0]).is_none());
        assert!(decode(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]).is_none());
        assert!(decode(&[1, 1, 99, 1, 0]).is_none());
    }
}
