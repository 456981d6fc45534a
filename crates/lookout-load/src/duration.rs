//! k6 duration strings (`"30s"`, `"1m30s"`, `"500ms"`, `"1.5h"`), the only way a scenario file
//! spells a length of time.
//!
//! Written by hand because the grammar is k6's (units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`, chained,
//! fractional) and a bare number is refused: k6 reads `30` as 30 ms, which nobody means.

use std::time::Duration;

/// Parses a k6 duration, or says what is wrong with it.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.parse::<f64>().is_ok() {
        return Err(format!("`{s}` has no unit; write e.g. `{s}s` or `{s}ms`"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{s}`: a number needs a unit (h, m, s, ms, us)"))?;
        if num_end == 0 {
            return Err(format!("`{s}`: expected a number at `{rest}`"));
        }
        let value: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("`{s}`: `{}` is not a number", &rest[..num_end]))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ns = match &rest[..unit_end] {
            "h" => 3_600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            other => {
                return Err(format!(
                    "`{s}`: unknown unit `{other}` (use h, m, s, ms, us or ns)"
                ))
            }
        };
        total += value * unit_ns;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total > 1e18 {
        return Err(format!("`{s}` is too long"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration the way k6's summary does: `1.23ms`, `512µs`, `2.5s`, `1m3s`.
pub fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us == 0.0 {
        "0s".into()
    } else if us < 1000.0 {
        format!("{}µs", trim(us))
    } else if us < 1e6 {
        format!("{}ms", trim(us / 1e3))
    } else if us < 60e6 {
        format!("{}s", trim(us / 1e6))
    } else {
        let secs = (us / 1e6).round() as u64;
        if secs >= 3600 {
            format!("{}h{}m{}s", secs / 3600, secs % 3600 / 60, secs % 60)
        } else {
            format!("{}m{}s", secs / 60, secs % 60)
        }
    }
}

/// Two decimals, without trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k6_durations_parse() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("3d").unwrap_err().contains("unknown unit"));
        assert!(parse("").is_err());
        assert!(parse("s").is_err());
    }

    #[test]
    fn durations_print_like_k6() {
        assert_eq!(human(Duration::from_micros(512)), "512µs");
        assert_eq!(human(Duration::from_micros(1234)), "1.23ms");
        assert_eq!(human(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human(Duration::from_secs(63)), "1m3s");
    }
}
