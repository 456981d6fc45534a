//! The first chunk layout (version 0), still read: chunks written before the version byte are
//! decoded by it until compaction rewrites them (a late sample merged into their block) or
//! retention deletes them. Still written too, while a replica of a version that reads nothing
//! else is live.
//!
//! Layout: sample count (u32, big endian), then a bit stream: first timestamp (64 bits), first
//! value (64 bits), second timestamp as a zigzag delta (64 bits), then per sample a
//! delta-of-delta in Prometheus's buckets ('0' | '10'+14 | '110'+17 | '1110'+20 | '1111'+64 bits)
//! and a value ('0' same | '10' within the previous window | '11' + 5-bit leading zeros + 6-bit
//! length + bits). Its first byte is always 0: a two-hour block holds at most 7,200,000 samples
//! (one per millisecond), below 2^24, which is how [`super::decode`] tells it from later versions.

use super::bits::{signed, BitReader, XorWindow};

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Decodes a version 0 chunk; `None` if it is damaged.
pub(super) fn decode(data: &[u8]) -> Option<Vec<(i64, u64)>> {
    let n = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let mut r = BitReader::new(data.get(4..)?);
    // Capacity from the data, not the (possibly damaged) count: each sample takes >= 2 bits.
    let mut out = Vec::with_capacity(n.min(data.len() * 4));
    let (mut t, mut delta, mut v) = (0i64, 0i64, 0u64);
    let mut window = XorWindow::reader();
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
        v ^= window.get(&mut r)?;
        out.push((t, v));
    }
    Some(out)
}

/// The version 0 encoder: what a cluster still running a replica of an older version writes
/// (see [`super::Layout`]).
pub(super) fn encode(samples: &[(i64, u64)]) -> Vec<u8> {
    use super::bits::{BitSink, BitWriter};
    fn zigzag(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }
    let mut w = BitWriter::new((samples.len() as u32).to_be_bytes().to_vec());
    let (mut prev_t, mut prev_delta, mut prev_v) = (0i64, 0i64, 0u64);
    let mut window = XorWindow::writer();
    for (i, &(t, v)) in samples.iter().enumerate() {
        if i == 0 {
            w.bits(t as u64, 64);
            w.bits(v, 64);
        } else {
            let delta = t.wrapping_sub(prev_t);
            if i == 1 {
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
            window.put(v ^ prev_v, &mut w);
        }
        prev_t = t;
        prev_v = v;
    }
    w.finish()
}
