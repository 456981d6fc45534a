//! Quantities and times as people read them: byte sizes, durations, rates, percentages, counts,
//! intervals and "3 min ago". Every page, billboard, incident title, report and CLI table
//! formats through here, so the same value reads the same everywhere.
//!
//! Hand-written rather than a crate: the rules (which unit, how many digits, how a UI
//! abbreviates) are Lookout's own presentation choices, and each is a few lines.

/// `512 B`, `3.2 KiB`, `14.0 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match n {
        n if n >= GIB => format!("{:.1} GiB", n as f64 / GIB as f64),
        n if n >= MIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n if n >= KIB => format!("{:.1} KiB", n as f64 / KIB as f64),
        n => format!("{n} B"),
    }
}

/// `v` with three significant digits, without trailing zeros: `0.62`, `12.3`, `620`, `4,210`.
/// Integers of four or more digits keep every digit, grouped by thousands.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 999.5 {
        return grouped(v.round() as i64);
    }
    if a == 0.0 {
        return "0".into();
    }
    let digits = if a >= 99.95 {
        0
    } else if a >= 9.995 {
        1
    } else if a >= 0.9995 {
        2
    } else {
        // Below one: three significant digits, at most six decimals.
        let lead = (-a.log10()).floor() as usize;
        (lead + 3).min(6)
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// `12,345`: an integer with thousands grouped.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count people read at a glance: `980`, `12,345`, `1.2 M`, `3.4 B`.
pub fn count(n: f64) -> String {
    match n.abs() {
        a if a >= 1e9 => format!("{} B", number(n / 1e9)),
        a if a >= 1e6 => format!("{} M", number(n / 1e6)),
        _ => number(n),
    }
}

/// A measured duration given in milliseconds: `0.42 ms`, `62.3 ms`, `620 ms`, `1.25 s`, `42.1 s`,
/// then as [`span`] (`4.2 min`, `1 h 05 min`). Latencies, query times, p95s.
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "—".into();
    }
    match ms.abs() {
        a if a < 999.5 => format!("{} ms", number(ms)),
        a if a < 59_950.0 => format!("{} s", number(ms / 1000.0)),
        _ => span(ms.round() as i64),
    }
}

/// A length of time in whole units: `45 s`, `4.2 min`, `25 min`, `1 h 05 min`, `2 d 3 h`.
/// Outages, "down for", time to acknowledge.
pub fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 600 => format!("{} min", number(ms as f64 / 60_000.0)),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {:02} min", s / 3_600, (s % 3_600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// How often, from seconds: `every 30 s`, `every 5 min`, `every 1 h`, `every 1 day`,
/// `every 90 min` (an interval that is not a whole larger unit stays in the smaller one).
pub fn every(secs: i64) -> String {
    let unit =
        |n: i64, one: &str, many: &str| format!("every {n} {}", if n == 1 { one } else { many });
    match secs {
        s if s > 0 && s % 86_400 == 0 => unit(s / 86_400, "day", "days"),
        s if s > 0 && s % 3_600 == 0 => format!("every {} h", s / 3_600),
        s if s > 0 && s % 60 == 0 => format!("every {} min", s / 60),
        s => format!("every {s} s"),
    }
}

/// A percentage given as a percentage (0-100): `0 %`, `0.05 %`, `1.23 %`, `12.3 %`, `99.95 %`,
/// `100 %`. Near 100 two decimals stay, so 99.95 % and 100 % read differently.
pub fn percent(p: f64) -> String {
    if !p.is_finite() {
        return "—".into();
    }
    if p > 99.0 && p < 100.0 {
        let s = format!("{p:.2}");
        // 99.999 would round to "100.00": say it is just below 100 instead.
        return if s == "100.00" {
            "99.99 %".into()
        } else {
            format!("{s} %")
        };
    }
    format!("{} %", number(p))
}

/// A rate per second: `0.5/s`, `12.3/s`, `4,210/s`.
pub fn per_second(r: f64) -> String {
    format!("{}/s", number(r))
}

/// Relative to `now_ms`: `just now`, `42 s ago`, `3 min ago`, `5 h ago`, `3 days ago`; times
/// ahead read `in 4 min`.
pub fn ago(at_ms: i64, now_ms: i64) -> String {
    let d = now_ms - at_ms;
    let a = d.unsigned_abs() / 1000;
    let text = match a {
        0..=4 => return "just now".into(),
        a if a < 60 => format!("{a} s"),
        a if a < 3_600 => format!("{} min", a / 60),
        a if a < 172_800 => format!("{} h", a / 3_600),
        a => format!("{} days", a / 86_400),
    };
    if d >= 0 {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

/// An absolute time in UTC to the second, as a tooltip or a CLI column shows it:
/// `2026-12-06 10:03:22 UTC`.
pub fn datetime_utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 + 205), "3.2 KiB");
        assert_eq!(bytes(14 << 20), "14.0 MiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.6203), "0.62");
        assert_eq!(number(0.000_123_4), "0.000123");
        assert_eq!(number(1.0), "1");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(620.3), "620");
        assert_eq!(number(4_210.4), "4,210");
        assert_eq!(number(-3.5), "-3.5");
        assert_eq!(number(f64::NAN), "—");
        assert_eq!(grouped(-1_234_567), "-1,234,567");
        assert_eq!(count(1_234_567.0), "1.23 M");
    }

    #[test]
    fn durations_pick_the_unit_a_person_would() {
        // A billboard showed 0.6203 for 620 ms: seconds in, milliseconds out.
        assert_eq!(duration_ms(0.6203 * 1000.0), "620 ms");
        assert_eq!(duration_ms(0.42), "0.42 ms");
        assert_eq!(duration_ms(62.34), "62.3 ms");
        assert_eq!(duration_ms(1_250.0), "1.25 s");
        assert_eq!(duration_ms(42_100.0), "42.1 s");
        assert_eq!(duration_ms(252_000.0), "4.2 min");
        assert_eq!(span(3_900_000), "1 h 05 min");
        assert_eq!(span(2 * 86_400_000 + 3 * 3_600_000), "2 d 3 h");
    }

    #[test]
    fn intervals_read_as_every() {
        assert_eq!(every(30), "every 30 s");
        assert_eq!(every(300), "every 5 min");
        assert_eq!(every(5_400), "every 90 min");
        assert_eq!(every(3_600), "every 1 h");
        assert_eq!(every(86_400), "every 1 day");
        assert_eq!(every(7 * 86_400), "every 7 days");
    }

    #[test]
    fn percentages_round_sensibly_near_the_edges() {
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(0.0512), "0.0512 %");
        assert_eq!(percent(12.345), "12.3 %");
        assert_eq!(percent(99.95), "99.95 %");
        assert_eq!(percent(99.9999), "99.99 %");
        assert_eq!(percent(100.0), "100 %");
        assert_eq!(per_second(4_210.2), "4,210/s");
    }

    #[test]
    fn relative_times_read_both_ways() {
        let now = 1_000_000_000;
        assert_eq!(ago(now - 2_000, now), "just now");
        assert_eq!(ago(now - 42_000, now), "42 s ago");
        assert_eq!(ago(now - 185_000, now), "3 min ago");
        assert_eq!(ago(now - 5 * 3_600_000, now), "5 h ago");
        assert_eq!(ago(now - 3 * 86_400_000, now), "3 days ago");
        assert_eq!(ago(now + 240_000, now), "in 4 min");
        assert_eq!(datetime_utc(0), "1970-01-01 00:00:00 UTC");
    }
}
