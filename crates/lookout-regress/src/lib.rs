//! Lookout regression detection: change points in benchmark and load-test series
//! ([`detect`]), the series files `lookout regress analyze` reads ([`input`]), and importers for
//! common benchmark outputs ([`import`]).

pub mod detect;
pub mod import;
pub mod input;

pub use detect::{detect, ChangePoint, Options};

/// How many of the newest points a regression may start within and still fail `regress check`
/// (and page). An older regression has been seen by earlier checks; failing every later build
/// for it would teach teams to ignore the check.
pub const RECENT_POINTS: usize = 10;

/// How a series is named to people: `api.p95_ms {branch=main, machine=ci}`.
pub fn series_label<'a>(name: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let tags: Vec<String> = tags.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if tags.is_empty() {
        name.to_string()
    } else {
        format!("{name} {{{}}}", tags.join(", "))
    }
}

/// A measured value to three decimals, or in scientific notation when very large or small.
pub fn format_value(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_values_read_well() {
        assert_eq!(series_label("p95", []), "p95");
        assert_eq!(
            series_label("p95", [("a", "1"), ("b", "2")]),
            "p95 {a=1, b=2}"
        );
        assert_eq!(format_value(12.5), "12.500");
        assert_eq!(format_value(0.0001234), "1.234e-4");
    }
}
