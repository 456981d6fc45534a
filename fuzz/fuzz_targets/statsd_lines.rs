//! Fuzzes the StatsD and DogStatsD line parser with whole packets, as the UDP listener hands
//! them over, and the aggregator behind it (with a small series budget, flushed twice): no
//! input may panic, loop or allocate beyond a line's caps, and the budget always holds.
//!
//! Run: `fuzz/run.sh statsd_lines` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_protocol::statsd;
use lookout_server::statsd::aggregate::{Aggregator, Settings};

fuzz_target!(|data: &[u8]| {
    for line in statsd::lines(data) {
        if let Ok(statsd::Line::Metric(m)) = statsd::parse_line(line) {
            assert!(!m.name.is_empty());
            assert!(m.rate >= statsd::MIN_RATE && m.rate <= 1.0);
            assert!(m.values.len() <= statsd::MAX_VALUES && m.tags.len() <= statsd::MAX_TAGS);
        }
    }
    let mut agg = Aggregator::new(Settings {
        max_series: 8,
        ..Settings::default()
    });
    agg.add_packet(data);
    assert!(agg.len() <= 8);
    let _ = agg.flush(1);
    agg.add_packet(data);
    // No line can make a written value infinite or NaN.
    let b = agg.flush(2);
    assert!(b
        .series
        .iter()
        .all(|s| s.samples.iter().all(|p| p.1.is_finite())));
});
