//! Lookout regression detection: change points in benchmark and load-test series
//! ([`detect`]), the series files `lookout regress analyze` reads ([`input`]), and importers for
//! common benchmark outputs ([`import`]).

pub mod detect;
pub mod import;
pub mod input;

pub use detect::{detect, ChangePoint, Options};

/// How many of the newest points a regression may start within and still fail `regress check`.
pub const RECENT_POINTS: usize = 10;

/// The regression the newest points form, if they form one: the series' last change point made
/// it worse and began within the newest `recent` of `len` points. An older regression has been
/// seen by earlier checks; failing every later build for it would teach teams to ignore the check.
pub fn newest_regression(
    cps: &[ChangePoint],
    len: usize,
    lower_is_better: bool,
    recent: usize,
) -> Option<&ChangePoint> {
    let last = cps.last()?;
    (last.is_regression(lower_is_better) && last.index + recent >= len).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(before: usize, after: usize, up: f64) -> Vec<f64> {
        (0..before + after)
            .map(|i| {
                100.0 + f64::from(u8::try_from(i % 7).unwrap()) + if i >= before { up } else { 0.0 }
            })
            .collect()
    }

    #[test]
    fn a_fresh_slowdown_fails_the_check_and_an_old_one_does_not() {
        let v = step(60, 6, 40.0);
        let cps = detect(&v, &Options::default());
        let r = newest_regression(&cps, v.len(), true, RECENT_POINTS).expect("regression");
        assert_eq!(r.index, 60);
        // The same step read as throughput (higher is better) is an improvement.
        assert!(newest_regression(&cps, v.len(), false, RECENT_POINTS).is_none());
        let v = step(60, 30, 40.0);
        let cps = detect(&v, &Options::default());
        assert_eq!(cps.len(), 1);
        assert!(newest_regression(&cps, v.len(), true, RECENT_POINTS).is_none());
    }
}
