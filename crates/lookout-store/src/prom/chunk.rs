//! The compressed chunk of one series over one block: Gorilla encoding as in Facebook's paper and
//! Prometheus's TSDB — timestamps as delta-of-delta in variable bit widths, values as XOR with the
//! previous value, storing only the meaningful bits.
//!
//! Hand-written (about 150 lines) rather than taken from a crate: the Rust Gorilla crates found
//! (`tsz`, `gorilla-tsc`) take unsigned *second* timestamps or are unmaintained, and Prometheus
//! needs signed millisecond timestamps and every f64 bit pattern back exactly (NaN payloads, the
//! staleness marker, -0.0). XOR of bit patterns is lossless by construction, so they all survive.
//!
//! Layout: sample count (u32, big endian), then a bit stream: first timestamp (64 bits), first
//! value (64 bits), second timestamp as a zigzag delta (varbits), then per sample a
//! delta-of-delta in Prometheus's buckets ('0' | '10'+14 | '110'+17 | '1110'+20 | '1111'+64 bits)
//! and a value ('0' same | '10' within the previous window | '11' + 5-bit leading zeros + 6-bit
//! length + bits). Regular series (fixed interval, slowly moving values) take 1–2 bytes/sample.

/// Most samples in one chunk (the count is stored in 32 bits).
pub const MAX_SAMPLES: usize = u32::MAX as usize;

struct BitWriter {
    out: Vec<u8>,
    /// Bits used in the last byte (0 = start a new byte).
    used: u8,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.used == 0 {
            self.out.push(0);
        }
        if b {
            if let Some(last) = self.out.last_mut() {
                *last |= 1 << (7 - self.used);
            }
        }
        self.used = (self.used + 1) % 8;
    }

    /// The low `n` bits of `v`, most significant first.
    fn bits(&mut self, v: u64, n: u8) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<bool> {
        let byte = self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - (self.pos % 8))) & 1 == 1;
        self.pos += 1;
        Some(b)
    }

    fn bits(&mut self, n: u8) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Some(v)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Sign-extends the low `n` bits of `v`.
fn signed(v: u64, n: u8) -> i64 {
    let shift = 64 - u32::from(n);
    ((v << shift) as i64) >> shift
}

/// Encodes samples sorted by time (at most [`MAX_SAMPLES`]; more are cut off).
pub fn encode(samples: &[(i64, u64)]) -> Vec<u8> {
    let samples = &samples[..samples.len().min(MAX_SAMPLES)];
    let mut w = BitWriter {
        out: Vec::with_capacity(16 + samples.len() * 2),
        used: 0,
    };
    w.out
        .extend_from_slice(&(samples.len() as u32).to_be_bytes());
    let (mut prev_t, mut prev_delta, mut prev_v) = (0i64, 0i64, 0u64);
    let (mut lead, mut trail) = (u8::MAX, 0u8);
    for (i, &(t, v)) in samples.iter().enumerate() {
        match i {
            0 => {
                w.bits(t as u64, 64);
                w.bits(v, 64);
            }
            _ => {
                let delta = t.wrapping_sub(prev_t);
                if i == 1 {
                    // The first delta is usually the scrape interval: any width.
                    w.bits(zigzag(delta), 64);
                } else {
                    let dod = delta.wrapping_sub(prev_delta);
                    match dod {
                        0 => w.bit(false),
                        -8192..=8191 => {
                            w.bits(0b10, 2);
                            w.bits(dod as u64, 14);
                        }
                        -65536..=65535 => {
                            w.bits(0b110, 3);
                            w.bits(dod as u64, 17);
                        }
                        -524288..=524287 => {
                            w.bits(0b1110, 4);
                            w.bits(dod as u64, 20);
                        }
                        _ => {
                            w.bits(0b1111, 4);
                            w.bits(dod as u64, 64);
                        }
                    }
                }
                prev_delta = delta;
                let x = v ^ prev_v;
                if x == 0 {
                    w.bit(false);
                } else {
                    w.bit(true);
                    let l = (x.leading_zeros() as u8).min(31);
                    let tz = x.trailing_zeros() as u8;
                    if lead != u8::MAX && l >= lead && tz >= trail {
                        w.bit(false);
                        w.bits(x >> trail, 64 - lead - trail);
                    } else {
                        lead = l;
                        trail = tz;
                        let sig = 64 - l - tz;
                        w.bit(true);
                        w.bits(u64::from(l), 5);
                        // 64 meaningful bits do not fit in 6 bits: stored as 0.
                        w.bits(u64::from(sig % 64), 6);
                        w.bits(x >> tz, sig);
                    }
                }
            }
        }
        prev_t = t;
        prev_v = v;
    }
    w.out
}

/// Decodes a chunk into (time ms, value bits); `None` if it is damaged.
pub fn decode(data: &[u8]) -> Option<Vec<(i64, u64)>> {
    let n = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let mut r = BitReader {
        data: data.get(4..)?,
        pos: 0,
    };
    // Capacity from the data, not the (possibly damaged) count: each sample takes >= 2 bits.
    let mut out = Vec::with_capacity(n.min(data.len() * 4));
    let (mut t, mut delta, mut v) = (0i64, 0i64, 0u64);
    let (mut lead, mut trail) = (0u8, 0u8);
    for i in 0..n {
        if i == 0 {
            t = r.bits(64)? as i64;
            v = r.bits(64)?;
            out.push((t, v));
            continue;
        }
        if i == 1 {
            delta = unzigzag(r.bits(64)?);
        } else {
            let dod = if !r.bit()? {
                0
            } else if !r.bit()? {
                signed(r.bits(14)?, 14)
            } else if !r.bit()? {
                signed(r.bits(17)?, 17)
            } else if !r.bit()? {
                signed(r.bits(20)?, 20)
            } else {
                r.bits(64)? as i64
            };
            delta = delta.wrapping_add(dod);
        }
        t = t.wrapping_add(delta);
        if r.bit()? {
            if r.bit()? {
                lead = r.bits(5)? as u8;
                let mut sig = r.bits(6)? as u8;
                if sig == 0 {
                    sig = 64;
                }
                trail = 64u8.checked_sub(lead)?.checked_sub(sig)?;
            }
            let sig = 64u8.checked_sub(lead)?.checked_sub(trail)?;
            let x = r.bits(sig)?;
            v ^= x.checked_shl(u32::from(trail)).unwrap_or(0);
        }
        out.push((t, v));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &[(i64, u64)]) {
        assert_eq!(decode(&encode(s)).unwrap(), s);
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
        ];
        let s: Vec<(i64, u64)> = ts
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, (i as f64 * 0.1).to_bits()))
            .collect();
        round_trip(&s);
    }

    #[test]
    fn a_regular_series_takes_under_two_bytes_per_sample() {
        let s: Vec<(i64, u64)> = (0..480)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 15_000,
                    ((i * 7 % 13) as f64 + 100.0).to_bits(),
                )
            })
            .collect();
        let bytes = encode(&s).len();
        round_trip(&s);
        assert!(bytes < 2 * 480, "{bytes} bytes for 480 samples");
    }

    #[test]
    fn damaged_chunks_are_refused_not_panicked_on() {
        let s: Vec<(i64, u64)> = (0..50).map(|i| (i * 1000, (i as f64).to_bits())).collect();
        let e = encode(&s);
        for cut in 0..e.len() {
            let _ = decode(&e[..cut]);
        }
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0]).is_none());
    }
}
