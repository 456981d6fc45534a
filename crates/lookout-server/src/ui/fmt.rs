//! How pages show times and quantities: [`When`] renders a relative time ("3 min ago") in a
//! `<time>` element whose tooltip holds the absolute time (app.js turns it into the viewer's
//! zone), and the quantity formatters of [`lookout_core::units`] are re-exported so a page
//! needs one import. Every page formats through here rather than printing ISO strings.

use std::fmt;

use lookout_core::time::{iso, now_ms};
use lookout_core::units::{ago, datetime_utc};
pub use lookout_core::units::{
    bytes, count, duration_ms, every, grouped, number, per_second, percent, span,
};

/// A moment as a page shows it: `<time datetime="…" title="2026-12-06 10:03:22 UTC">3 min
/// ago</time>`. Renders as HTML (askama does not escape it); every part is generated here
/// from an integer, so nothing user-supplied reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// Milliseconds since the epoch.
    pub ms: i64,
    /// When the page was rendered, for the relative text.
    now: i64,
}

impl When {
    /// `ms` relative to now.
    pub fn at(ms: i64) -> Self {
        Self { ms, now: now_ms() }
    }

    /// An optional time: `None` stays `None` so a template can say "never".
    pub fn opt(ms: Option<i64>) -> Option<Self> {
        ms.map(Self::at)
    }

    /// An RFC 3339 time as the API's views give it (`None` when absent or unreadable), for
    /// pages built on those views (backups).
    pub fn parse(rfc3339: Option<&str>) -> Option<Self> {
        let t = chrono::DateTime::parse_from_rfc3339(rfc3339?).ok()?;
        Some(Self::at(t.timestamp_millis()))
    }

    /// The relative text alone ("3 min ago"), for places that cannot hold markup.
    pub fn relative(&self) -> String {
        ago(self.ms, self.now)
    }

    /// The absolute time in UTC (the tooltip before app.js localises it).
    pub fn absolute(&self) -> String {
        datetime_utc(self.ms)
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"<time datetime="{}" title="{}">{}</time>"#,
            iso(self.ms),
            self.absolute(),
            self.relative()
        )
    }
}

impl askama::filters::HtmlSafe for When {}

/// A moment in a given zone, as schedules show their shifts: `Mon 07 Dec 09:00 CET`.
pub fn in_zone(ms: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%a %d %b %H:%M %Z").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_reads_relative_with_the_absolute_time_on_hover() {
        let w = When {
            ms: 1_000_000,
            now: 1_000_000 + 180_000,
        };
        assert_eq!(
            w.to_string(),
            r#"<time datetime="1970-01-01T00:16:40.000Z" title="1970-01-01 00:16:40 UTC">3 min ago</time>"#
        );
        // 2026-12-07 08:00 UTC is 09:00 in Berlin.
        assert_eq!(
            in_zone(1_796_630_400_000, chrono_tz::Europe::Berlin),
            "Mon 07 Dec 09:00 CET"
        );
    }
}
