//! The bit stream under the chunk encodings: a writer (and a counter with the same interface, so
//! an encoding can be priced before it is written), a reader, and the prefix codes for signed
//! integers that timestamps and decimal values use. Most significant bit first.

/// Where encoded bits go: a [`BitWriter`] keeps them, a [`BitCount`] only counts them.
pub(super) trait BitSink {
    /// The low `n` bits of `v` (`n` at most 64).
    fn bits(&mut self, v: u64, n: u8);

    /// One bit.
    fn bit(&mut self, b: bool) {
        self.bits(u64::from(b), 1);
    }
}

/// Appends bits after whatever bytes its buffer already holds.
pub(super) struct BitWriter {
    out: Vec<u8>,
    /// Bits not yet in `out` (fewer than 8 between calls).
    acc: u64,
    pending: u32,
}

impl BitWriter {
    /// A writer continuing `out` (a header written byte-wise) on a byte boundary.
    pub(super) fn new(out: Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            pending: 0,
        }
    }

    /// At most 32 bits: the accumulator then holds at most 39.
    fn push(&mut self, v: u64, n: u8) {
        if n == 0 {
            return;
        }
        self.acc = (self.acc << n) | (v & ((1u64 << n) - 1));
        self.pending += u32::from(n);
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u64 << self.pending) - 1;
    }

    /// The bytes, the last one padded with zeros.
    pub(super) fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
        self.out
    }
}

impl BitSink for BitWriter {
    fn bits(&mut self, v: u64, n: u8) {
        if n > 32 {
            self.push(v >> 32, n - 32);
            self.push(v, 32);
        } else {
            self.push(v, n);
        }
    }
}

/// Counts bits instead of keeping them.
#[derive(Default)]
pub(super) struct BitCount(pub(super) usize);

impl BitSink for BitCount {
    fn bits(&mut self, _v: u64, n: u8) {
        self.0 += usize::from(n);
    }
}

/// Reads bits; every read past the end is `None`.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader from the first bit of `data`.
    pub(super) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bits not read yet.
    pub(super) fn left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    pub(super) fn bit(&mut self) -> Option<bool> {
        let byte = self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - (self.pos % 8))) & 1 == 1;
        self.pos += 1;
        Some(b)
    }

    pub(super) fn bits(&mut self, n: u8) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Some(v)
    }
}

/// Sign-extends the low `n` bits of `v` (`n` from 1 to 64).
pub(super) fn signed(v: u64, n: u8) -> i64 {
    let shift = 64 - u32::from(n);
    ((v << shift) as i64) >> shift
}

/// A prefix code for signed integers: code `k` is `k` one-bits then a zero (the last code has
/// no zero), followed by the value in `widths[k]` bits; width 0 stands for the value 0 alone.
/// With `escape`, one more code (all ones) means "something else follows" (a raw value).
pub(super) struct IntCode {
    pub(super) widths: &'static [u8],
    pub(super) escape: bool,
}

/// What [`IntCode::get`] read.
pub(super) enum Code {
    Int(i64),
    Escape,
}

impl IntCode {
    fn codes(&self) -> usize {
        self.widths.len() + usize::from(self.escape)
    }

    fn prefix(&self, k: usize, w: &mut impl BitSink) {
        let last = k + 1 == self.codes();
        // k < 8 codes: the prefix fits in a byte.
        let ones = (1u64 << k) - 1;
        if last {
            w.bits(ones, k as u8);
        } else {
            w.bits(ones << 1, k as u8 + 1);
        }
    }

    /// Writes `v` in the narrowest bucket that holds it.
    pub(super) fn put(&self, v: i64, w: &mut impl BitSink) {
        for (k, &width) in self.widths.iter().enumerate() {
            let fits = match width {
                0 => v == 0,
                64 => true,
                _ => {
                    let half = 1i64 << (width - 1);
                    (-half..half).contains(&v)
                }
            };
            if fits {
                self.prefix(k, w);
                w.bits(v as u64, width);
                return;
            }
        }
    }

    /// Writes the escape code (the caller writes what it stands for).
    pub(super) fn put_escape(&self, w: &mut impl BitSink) {
        self.prefix(self.widths.len(), w);
    }

    pub(super) fn get(&self, r: &mut BitReader<'_>) -> Option<Code> {
        let mut k = 0;
        while k + 1 < self.codes() && r.bit()? {
            k += 1;
        }
        match self.widths.get(k) {
            None => Some(Code::Escape),
            Some(0) => Some(Code::Int(0)),
            Some(&width) => Some(Code::Int(signed(r.bits(width)?, width))),
        }
    }
}

/// Gorilla's XOR value coding, shared by both chunk layouts: per value '0' when unchanged, else
/// '10' + the meaningful bits inside the previous window, or '11' + 5 bits of leading zeros +
/// 6 bits of length (64 stored as 0) + the bits, which becomes the window.
#[derive(Debug, Clone, Copy)]
pub(super) struct XorWindow {
    lead: u8,
    trail: u8,
}

impl XorWindow {
    /// A writer's window: none yet, so the first changed value opens one.
    pub(super) fn writer() -> Self {
        XorWindow {
            lead: u8::MAX,
            trail: 0,
        }
    }

    /// A reader's window, before the stream opens one.
    pub(super) fn reader() -> Self {
        XorWindow { lead: 0, trail: 0 }
    }

    /// Writes `x`, a value XOR'd with the one before it.
    pub(super) fn put(&mut self, x: u64, w: &mut impl BitSink) {
        if x == 0 {
            w.bit(false);
            return;
        }
        w.bit(true);
        let l = (x.leading_zeros() as u8).min(31);
        let tz = x.trailing_zeros() as u8;
        if self.lead != u8::MAX && l >= self.lead && tz >= self.trail {
            w.bit(false);
            w.bits(x >> self.trail, 64 - self.lead - self.trail);
        } else {
            self.lead = l;
            self.trail = tz;
            let sig = 64 - l - tz;
            w.bit(true);
            w.bits(u64::from(l), 5);
            // 64 meaningful bits do not fit in 6 bits: stored as 0.
            w.bits(u64::from(sig % 64), 6);
            w.bits(x >> tz, sig);
        }
    }

    /// Reads what [`XorWindow::put`] wrote: the XOR with the previous value (0 when unchanged);
    /// `None` when the stream is damaged.
    pub(super) fn get(&mut self, r: &mut BitReader<'_>) -> Option<u64> {
        if !r.bit()? {
            return Some(0);
        }
        if r.bit()? {
            self.lead = r.bits(5)? as u8;
            let mut sig = r.bits(6)? as u8;
            if sig == 0 {
                sig = 64;
            }
            self.trail = 64u8.checked_sub(self.lead)?.checked_sub(sig)?;
        }
        let sig = 64u8.checked_sub(self.lead)?.checked_sub(self.trail)?;
        let x = r.bits(sig)?;
        Some(x.checked_shl(u32::from(self.trail)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_and_the_escape_read_back() {
        let code = IntCode {
            widths: &[0, 4, 8, 64],
            escape: true,
        };
        let values = [0, 1, -8, 7, 8, -9, 127, -128, 128, i64::MIN, i64::MAX];
        let mut w = BitWriter::new(vec![0xAB]);
        let mut count = BitCount::default();
        for v in values {
            code.put(v, &mut w);
            code.put(v, &mut count);
        }
        code.put_escape(&mut w);
        code.put_escape(&mut count);
        w.bits(u64::MAX, 64);
        count.bits(u64::MAX, 64);
        let out = w.finish();
        assert_eq!(out[0], 0xAB, "the header before the stream stays");
        assert_eq!(
            out.len() - 1,
            count.0.div_ceil(8),
            "the counter prices what is written"
        );
        let mut r = BitReader::new(&out[1..]);
        for v in values {
            assert!(
                matches!(code.get(&mut r), Some(Code::Int(x)) if x == v),
                "{v}"
            );
        }
        assert!(matches!(code.get(&mut r), Some(Code::Escape)));
        assert_eq!(r.bits(64), Some(u64::MAX));
    }
}
