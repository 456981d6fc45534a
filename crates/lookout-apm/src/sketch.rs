//! The DDSketch behind every latency percentile: relative error 1 %, exact merges, a compact
//! stable encoding.
//!
//! Written here rather than taken from `sketches-ddsketch` because rollups need three things that
//! crate does not expose: the count at or below a value (Apdex and "share slower than x" read the
//! CDF, not a quantile), access to the bins for a storage format of our own that SQLite and
//! PostgreSQL rows keep for years (the crate's serde form is its internal layout), and merging
//! sketches decoded from storage without re-inserting values. The algorithm is DDSketch's
//! logarithmic mapping (Masson, Rim, Lee, VLDB 2019) with a dense store that collapses its lowest
//! bins past a cap, so high percentiles — the ones people page on — stay exact to 1 %.

/// Relative accuracy of every sketch: a quantile `y` answers for a true value `x` with
/// `|y - x| <= ALPHA * x`.
pub const ALPHA: f64 = 0.01;
/// Values below this (in the sketch's unit, milliseconds: one nanosecond) count as zero.
const MIN_VALUE: f64 = 1e-6;
/// Most bins kept; 1 ns to 30 years at 1 % needs about 2,100.
const MAX_BINS: usize = 2_400;
/// Encoding version byte.
const VERSION: u8 = 1;

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// A mergeable quantile sketch over non-negative values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    /// Values at or below [`MIN_VALUE`].
    zero: u64,
    /// Index of `bins[0]`.
    offset: i32,
    /// Counts of consecutive bin indexes; bin `i` holds values in `(γ^(i-1), γ^i]`.
    bins: Vec<u64>,
    count: u64,
}

/// Why stored sketch bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("corrupt sketch encoding")]
pub struct CorruptSketch;

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes this sketch holds on the heap (its bins), for callers that budget memory.
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<u64>()
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn index(v: f64) -> i32 {
        (v.ln() / gamma().ln()).ceil() as i32
    }

    /// The representative value of bin `i`: within [`ALPHA`] of every value in it.
    fn value(i: i32) -> f64 {
        2.0 * gamma().powi(i) / (gamma() + 1.0)
    }

    /// Records one value (negative and NaN values count as zero).
    pub fn add(&mut self, v: f64) {
        self.add_n(v, 1);
    }

    /// Records `n` occurrences of `v`.
    pub fn add_n(&mut self, v: f64, n: u64) {
        if n == 0 {
            return;
        }
        // Counts come from untrusted exports (histogram buckets); they saturate, never wrap.
        self.count = self.count.saturating_add(n);
        if v.is_nan() || v <= MIN_VALUE {
            self.zero = self.zero.saturating_add(n);
            return;
        }
        // Beyond 10^15 (30,000 years in ms) nothing real is measured; clamping keeps every
        // index inside what `decode` accepts.
        let i = Self::index(v.min(1e15));
        self.bump(i, n);
    }

    fn bump(&mut self, i: i32, n: u64) {
        if self.bins.is_empty() {
            self.offset = i;
            self.bins.push(n);
            return;
        }
        if i < self.offset {
            let grow = (self.offset - i) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = i;
        }
        let at = (i - self.offset) as usize;
        if at >= self.bins.len() {
            self.bins.resize(at + 1, 0);
        }
        self.bins[at] = self.bins[at].saturating_add(n);
        self.collapse();
    }

    /// Folds the lowest bins together past [`MAX_BINS`], keeping the high end exact.
    fn collapse(&mut self) {
        if self.bins.len() <= MAX_BINS {
            return;
        }
        let extra = self.bins.len() - MAX_BINS;
        let folded = self.bins.drain(..extra).fold(0u64, u64::saturating_add);
        self.bins[0] = self.bins[0].saturating_add(folded);
        self.offset += extra as i32;
    }

    /// Adds `other`'s values to this sketch (exact: bin counts add).
    pub fn merge(&mut self, other: &Sketch) {
        self.zero = self.zero.saturating_add(other.zero);
        self.count = self.count.saturating_add(other.zero);
        for (k, &n) in other.bins.iter().enumerate() {
            if n > 0 {
                self.count = self.count.saturating_add(n);
                self.bump(other.offset + k as i32, n);
            }
        }
    }

    /// The `q`-quantile (0..=1), or `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // The value at rank ⌊q·(n−1)⌋ (0-based): "lower" interpolation, as DDSketch defines it.
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        if rank < self.zero {
            return Some(0.0);
        }
        let mut seen = self.zero;
        for (k, &n) in self.bins.iter().enumerate() {
            seen = seen.saturating_add(n);
            if seen > rank {
                return Some(Self::value(self.offset + k as i32));
            }
        }
        self.bins
            .len()
            .checked_sub(1)
            .map(|k| Self::value(self.offset + k as i32))
    }

    /// How many values are at or below `x` (exact up to the one bin that holds `x`).
    pub fn count_at_most(&self, x: f64) -> u64 {
        if x.is_nan() || x < 0.0 {
            return 0;
        }
        if x <= MIN_VALUE {
            return self.zero;
        }
        let last = Self::index(x);
        let upto = (last - self.offset + 1).clamp(0, self.bins.len() as i32) as usize;
        self.bins[..upto]
            .iter()
            .fold(self.zero, |a, &n| a.saturating_add(n))
    }

    /// The stored form: version, zero count, then (index delta, count) varint pairs of the
    /// non-empty bins. A typical minute of one endpoint encodes in a few hundred bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        put_varint(&mut out, self.zero);
        let nonzero = self.bins.iter().filter(|&&n| n > 0).count();
        put_varint(&mut out, nonzero as u64);
        let mut prev = 0i64;
        for (k, &n) in self.bins.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let i = i64::from(self.offset) + k as i64;
            put_varint(&mut out, zigzag(i - prev));
            put_varint(&mut out, n);
            prev = i;
        }
        out
    }

    /// Reads [`Sketch::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Sketch, CorruptSketch> {
        let mut s = Sketch::new();
        s.decode_into(bytes)?;
        Ok(s)
    }

    /// Merges an encoded sketch into this one without building it first.
    pub fn decode_into(&mut self, bytes: &[u8]) -> Result<(), CorruptSketch> {
        let (&version, mut rest) = bytes.split_first().ok_or(CorruptSketch)?;
        if version != VERSION {
            return Err(CorruptSketch);
        }
        let zero = get_varint(&mut rest)?;
        let bins = get_varint(&mut rest)?;
        if bins > rest.len() as u64 {
            return Err(CorruptSketch);
        }
        self.zero = self.zero.checked_add(zero).ok_or(CorruptSketch)?;
        self.count = self.count.checked_add(zero).ok_or(CorruptSketch)?;
        let mut prev = 0i64;
        for _ in 0..bins {
            let i = prev
                .checked_add(unzigzag(get_varint(&mut rest)?))
                .ok_or(CorruptSketch)?;
            let n = get_varint(&mut rest)?;
            let i32_index = i32::try_from(i).map_err(|_| CorruptSketch)?;
            // Indexes outside what f64 durations can produce mean the bytes are not ours.
            if !(-4_000..=4_000).contains(&i32_index) {
                return Err(CorruptSketch);
            }
            if n > 0 {
                self.count = self.count.checked_add(n).ok_or(CorruptSketch)?;
                self.bump(i32_index, n);
            }
            prev = i;
        }
        if rest.is_empty() {
            Ok(())
        } else {
            Err(CorruptSketch)
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, CorruptSketch> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first().ok_or(CorruptSketch)?;
        *input = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CorruptSketch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_stay_within_one_percent_over_six_decades() {
        let mut s = Sketch::new();
        let mut values: Vec<f64> = (0..20_000).map(|i| 0.01 * 1.0007f64.powi(i)).collect();
        for v in &values {
            s.add(*v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let (got, want) = (s.quantile(q).unwrap(), exact(&values, q));
            assert!((got - want).abs() <= ALPHA * want, "q{q}: {got} vs {want}");
        }
    }

    #[test]
    fn merged_parts_answer_like_one_sketch_and_survive_encoding() {
        let mut whole = Sketch::new();
        let mut parts = [Sketch::new(), Sketch::new(), Sketch::new()];
        for i in 0..3_000u32 {
            let v = f64::from(i % 997) * 0.37;
            whole.add(v);
            parts[(i % 3) as usize].add(v);
        }
        let mut merged = Sketch::new();
        for p in &parts {
            merged.decode_into(&p.encode()).unwrap();
        }
        assert_eq!(merged.count(), 3_000);
        for q in [0.1, 0.5, 0.95, 0.99] {
            assert_eq!(merged.quantile(q), whole.quantile(q));
        }
        assert_eq!(Sketch::decode(&whole.encode()).unwrap(), whole);
    }

    #[test]
    fn counts_at_or_below_a_threshold() {
        let mut s = Sketch::new();
        for v in 1..=1000 {
            s.add(f64::from(v));
        }
        let at = s.count_at_most(500.0);
        assert!((495..=505).contains(&at), "{at}");
        assert_eq!(s.count_at_most(0.5), 0);
        assert_eq!(s.count_at_most(5_000.0), 1000);
    }

    #[test]
    fn huge_counts_saturate_or_are_refused() {
        let mut s = Sketch::new();
        s.add_n(5.0, u64::MAX);
        s.add_n(5.0, 3);
        s.add_n(0.0, u64::MAX);
        assert_eq!(s.count(), u64::MAX);
        assert!(s.quantile(0.99).is_some());
        // Found by the otlp_decoders fuzz target: a zero count that overflows the total.
        let mut bytes = vec![1];
        bytes.extend([
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0,
        ]);
        let mut t = Sketch::decode(&bytes).unwrap();
        assert_eq!(t.decode_into(&bytes), Err(CorruptSketch));
        // Also found by the fuzzer: index deltas whose sum overflows.
        assert_eq!(
            Sketch::decode(&[
                1, 54, 3, 9, 252, 10, 39, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 49, 46
            ]),
            Err(CorruptSketch)
        );
    }

    #[test]
    fn garbage_bytes_are_refused_not_trusted() {
        assert_eq!(Sketch::decode(&[]), Err(CorruptSketch));
        assert_eq!(Sketch::decode(&[9, 0, 0]), Err(CorruptSketch));
        assert_eq!(Sketch::decode(&[1, 0, 5, 1]), Err(CorruptSketch));
        assert!(Sketch::decode(&[1, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1]).is_err());
    }
}
