//! StatsD and DogStatsD lines, as UDP packets carry them, parsed without allocation beyond the
//! values and tags of one line and without panics (the packets come from anyone who can reach
//! the port).
//!
//! A line is `name:value[:value…]|type[|@rate][|#tag:value,tag…][|c:container][|Tunix]`:
//! - types `c` (counter), `g` (gauge; a leading `+` or `-` makes it a delta, as in Etsy's
//!   StatsD), `ms` (timer), `h` (histogram), `d` (distribution), `s` (set, any text as member);
//! - several values in one line (DogStatsD protocol 1.1) share the type, rate and tags;
//! - `|c:` (container id) and `|T` (client timestamp) are accepted and ignored: the aggregator
//!   stamps samples at its flush, as DogStatsD does without timestamps;
//! - any other `|x:…` field (DogStatsD's `|e:` external data, `|card:` cardinality, and fields
//!   yet to come) is ignored and counted in [`Metric::unknown_fields`], as the Datadog agent
//!   ignores what it does not know: the line's value is kept;
//! - a sample rate below [`MIN_RATE`] is refused: its weight (1/rate) would swamp the totals;
//! - events (`_e{…}`) and service checks (`_sc|…`) are recognised and returned as such.
//!
//! A packet is lines separated by `\n` (a trailing `\r` is tolerated); each line stands alone,
//! so one bad line never costs its neighbours.

/// Longest metric name taken, in bytes.
pub const MAX_NAME: usize = 250;
/// Most tags one line may carry.
pub const MAX_TAGS: usize = 64;
/// Longest tag, in bytes.
pub const MAX_TAG: usize = 250;
/// Most values one line may carry.
pub const MAX_VALUES: usize = 1024;
/// Smallest sample rate taken: a value then stands for at most a million.
pub const MIN_RATE: f64 = 1e-6;

/// What a metric line measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `c`
    Counter,
    /// `g`
    Gauge,
    /// `ms`
    Timer,
    /// `h`
    Histogram,
    /// `d`
    Distribution,
    /// `s`
    Set,
}

/// One value of a line.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A number (counters, timers, histograms, distributions, and gauges set outright).
    Number(f64),
    /// A gauge change: `+3` or `-3`.
    Delta(f64),
    /// A set member, as sent.
    Member(&'a str),
}

/// A metric line.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric<'a> {
    /// The name as sent (not yet mapped to a Prometheus name).
    pub name: &'a str,
    /// Its type.
    pub kind: Kind,
    /// One value or more.
    pub values: Vec<Value<'a>>,
    /// The sample rate, in (0, 1]; 1 when not given.
    pub rate: f64,
    /// DogStatsD tags: `key:value`, or a bare `key` (`None`).
    pub tags: Vec<(&'a str, Option<&'a str>)>,
    /// Fields after the type that were not understood and were ignored (`|e:…`, `|card:…`).
    pub unknown_fields: u32,
}

/// A parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// A metric.
    Metric(Metric<'a>),
    /// A DogStatsD event (`_e{…}`), not stored.
    Event,
    /// A DogStatsD service check (`_sc|…`), not stored.
    ServiceCheck,
}

/// Why a line was refused; the text names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub &'static str);

/// The non-empty lines of a packet.
pub fn lines(packet: &[u8]) -> impl Iterator<Item = &[u8]> {
    packet
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// Parses one line.
pub fn parse_line(line: &[u8]) -> Result<Line<'_>, LineError> {
    let line = std::str::from_utf8(line).map_err(|_| LineError("line is not UTF-8"))?;
    if line.starts_with("_e{") {
        return Ok(Line::Event);
    }
    if line.starts_with("_sc|") {
        return Ok(Line::ServiceCheck);
    }
    let (name, rest) = line
        .split_once(':')
        .ok_or(LineError("no ':' after the metric name"))?;
    if name.is_empty() {
        return Err(LineError("empty metric name"));
    }
    if name.len() > MAX_NAME {
        return Err(LineError("metric name longer than 250 bytes"));
    }
    let mut fields = rest.split('|');
    let raw_values = fields.next().unwrap_or("");
    let kind = match fields.next() {
        Some("c") => Kind::Counter,
        Some("g") => Kind::Gauge,
        Some("ms") => Kind::Timer,
        Some("h") => Kind::Histogram,
        Some("d") => Kind::Distribution,
        Some("s") => Kind::Set,
        Some(_) => return Err(LineError("unknown metric type (c, g, ms, h, d or s)")),
        None => return Err(LineError("no '|type' after the value")),
    };
    let mut rate = 1.0;
    let mut tags = Vec::new();
    let mut unknown_fields = 0;
    for field in fields {
        if let Some(r) = field.strip_prefix('@') {
            rate = r
                .parse::<f64>()
                .ok()
                .filter(|r| (MIN_RATE..=1.0).contains(r))
                .ok_or(LineError("sample rate is not a number in [0.000001, 1]"))?;
        } else if let Some(list) = field.strip_prefix('#') {
            for tag in list.split(',').filter(|t| !t.is_empty()) {
                if tags.len() >= MAX_TAGS {
                    return Err(LineError("more than 64 tags"));
                }
                if tag.len() > MAX_TAG {
                    return Err(LineError("tag longer than 250 bytes"));
                }
                tags.push(match tag.split_once(':') {
                    Some((k, v)) => (k, Some(v)),
                    None => (tag, None),
                });
            }
        } else if field.starts_with("c:") || field.starts_with('T') || field.is_empty() {
            // Container id and client timestamp: accepted, not used (see the module docs).
        } else if field
            .split_once(':')
            .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            // `e:` (external data), `card:` (cardinality) and fields yet to come: ignored, as
            // the Datadog agent ignores them, and counted.
            unknown_fields += 1;
        } else {
            return Err(LineError("unknown field after the type"));
        }
    }
    let mut values = Vec::new();
    for raw in raw_values.split(':') {
        if values.len() >= MAX_VALUES {
            return Err(LineError("more than 1024 values in one line"));
        }
        values.push(value(kind, raw)?);
    }
    Ok(Line::Metric(Metric {
        name,
        kind,
        values,
        rate,
        tags,
        unknown_fields,
    }))
}

fn value(kind: Kind, raw: &str) -> Result<Value<'_>, LineError> {
    if raw.is_empty() {
        return Err(LineError("empty value"));
    }
    if kind == Kind::Set {
        return Ok(Value::Member(raw));
    }
    let n = raw
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or(LineError("value is not a finite number"))?;
    if kind == Kind::Gauge && (raw.starts_with('+') || raw.starts_with('-')) {
        return Ok(Value::Delta(n));
    }
    Ok(Value::Number(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(line: &str) -> Metric<'_> {
        match parse_line(line.as_bytes()).unwrap() {
            Line::Metric(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_type_with_rates_and_tags() {
        let m = metric("page.views:3|c|@0.1|#env:prod,canary");
        assert_eq!(m.name, "page.views");
        assert_eq!(m.kind, Kind::Counter);
        assert_eq!(m.values, vec![Value::Number(3.0)]);
        assert_eq!(m.rate, 0.1);
        assert_eq!(m.tags, vec![("env", Some("prod")), ("canary", None)]);
        assert_eq!(metric("t:12.5|ms").kind, Kind::Timer);
        assert_eq!(metric("h:1|h").kind, Kind::Histogram);
        assert_eq!(metric("d:1|d").kind, Kind::Distribution);
        assert_eq!(metric("u:alice|s").values, vec![Value::Member("alice")]);
        // A tag value may itself hold ':' (URLs, times): only the first one splits.
        assert_eq!(
            metric("x:1|c|#url:http://a:8/b").tags,
            vec![("url", Some("http://a:8/b"))]
        );
    }

    #[test]
    fn gauge_signs_are_deltas_and_plain_numbers_are_sets() {
        assert_eq!(metric("g:+4|g").values, vec![Value::Delta(4.0)]);
        assert_eq!(metric("g:-4|g").values, vec![Value::Delta(-4.0)]);
        assert_eq!(metric("g:4|g").values, vec![Value::Number(4.0)]);
        // For counters a sign is just a sign.
        assert_eq!(metric("c:-4|c").values, vec![Value::Number(-4.0)]);
    }

    #[test]
    fn several_values_timestamps_and_containers() {
        let m = metric("lat:1:2:3|h|#a:b|c:abc123|T1656581400");
        assert_eq!(
            m.values,
            vec![Value::Number(1.0), Value::Number(2.0), Value::Number(3.0)]
        );
        assert_eq!(m.tags, vec![("a", Some("b"))]);
    }

    #[test]
    fn unknown_dogstatsd_fields_are_ignored_and_counted() {
        let m = metric("x:2|c|#a:b|e:it-false,cn-web,pu-123|card:high|c:abc");
        assert_eq!(m.values, vec![Value::Number(2.0)]);
        assert_eq!(m.tags, vec![("a", Some("b"))]);
        assert_eq!(m.unknown_fields, 2);
        assert_eq!(metric("x:1|c|@0.000001").rate, 1e-6);
    }

    #[test]
    fn events_and_service_checks_are_recognised() {
        assert_eq!(parse_line(b"_e{5,4}:title|text|#a:b").unwrap(), Line::Event);
        assert_eq!(parse_line(b"_sc|db|0|#a:b").unwrap(), Line::ServiceCheck);
    }

    #[test]
    fn malformed_lines_name_their_fault() {
        for (line, why) in [
            (&b"novalue"[..], "no ':'"),
            (b":1|c", "empty metric name"),
            (b"x:1", "no '|type'"),
            (b"x:1|q", "unknown metric type"),
            (b"x:abc|c", "not a finite number"),
            (b"x:NaN|g", "not a finite number"),
            (b"x:inf|ms", "not a finite number"),
            (b"x:|c", "empty value"),
            (b"x:1|c|@0", "sample rate"),
            (b"x:1|c|@2", "sample rate"),
            (b"x:1|c|@abc", "sample rate"),
            (b"x:1|c|@1e-320", "sample rate"),
            (b"x:1|c|@0.0000001", "sample rate"),
            (b"x:1|c|zzz", "unknown field"),
            (b"x:\xff|c", "UTF-8"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.0.contains(why), "{line:?}: {e}");
        }
        let long = format!("{}:1|c", "a".repeat(MAX_NAME + 1));
        assert!(parse_line(long.as_bytes()).is_err());
        let tags = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect::<Vec<_>>();
        let many = format!("x:1|c|#{}", tags.join(","));
        assert!(parse_line(many.as_bytes()).is_err());
    }

    #[test]
    fn packets_split_into_lines() {
        let got: Vec<&[u8]> = lines(b"a:1|c\r\n\nb:2|g\n").collect();
        assert_eq!(got, vec![&b"a:1|c"[..], b"b:2|g"]);
    }
}
