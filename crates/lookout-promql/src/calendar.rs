//! The date functions (`year`, `month`, `day_of_month`, `day_of_week`, `day_of_year`,
//! `days_in_month`, `hour`, `minute`) and `timestamp`: values read as Unix seconds in UTC, as
//! Prometheus does (Go's `time.Unix(int64(v), 0).UTC()`), by civil-calendar arithmetic.

use crate::error::Error;
use crate::eval::{drop_name, present, Ctx, RS, V};
use crate::ir::{Node, Sel};

/// Which calendar field a date function reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DatePart {
    Year,
    Month,
    DayOfMonth,
    DayOfWeek,
    DayOfYear,
    DaysInMonth,
    Hour,
    Minute,
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// One calendar field of a Unix time in seconds; NaN for a value that is no time.
pub(crate) fn date_part(part: DatePart, secs: f64) -> f64 {
    // Beyond ±10^12 s (about 31,000 years) Go's time arithmetic is no guide either.
    if !secs.is_finite() || secs.abs() > 1e12 {
        return f64::NAN;
    }
    let t = secs as i64; // truncation toward zero, as Go's int64(v)
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let v = match part {
        DatePart::Year => y,
        DatePart::Month => m,
        DatePart::DayOfMonth => d,
        DatePart::DayOfWeek => (days + 4).rem_euclid(7),
        DatePart::DayOfYear => {
            let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][(m - 1) as usize];
            before + d + i64::from(m > 2 && is_leap(y))
        }
        DatePart::DaysInMonth => match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        },
        DatePart::Hour => sod / 3600,
        DatePart::Minute => sod % 3600 / 60,
    };
    v as f64
}

impl Ctx<'_> {
    /// A date function: of its argument's values, or of the evaluation time without one.
    pub(crate) fn date_fn(&self, part: DatePart, args: &[Node]) -> Result<V, Error> {
        let Some(arg) = args.first() else {
            let vals = self
                .steps
                .iter()
                .map(|t| date_part(part, *t as f64 / 1000.0))
                .collect();
            return Ok(V::Vector(vec![RS {
                labels: Vec::new(),
                vals,
            }]));
        };
        let mut v = self.eval_vector(arg)?;
        for s in &mut v {
            s.labels = drop_name(&s.labels);
            for x in s.vals.iter_mut().filter(|x| present(**x)) {
                *x = date_part(part, *x);
            }
        }
        Ok(V::Vector(crate::functions::merge_same_labels(v)?))
    }

    /// `timestamp(v)`: the time of each sample a vector selector picked (not the evaluation
    /// time), and the evaluation time for any other argument, as Prometheus does.
    pub(crate) fn timestamp_fn(&self, args: &[Node]) -> Result<V, Error> {
        let mut v = match &args[0] {
            Node::Sel(sel) if sel.range_ms.is_none() => self.sample_times(sel)?,
            other => {
                let mut v = self.eval_vector(other)?;
                for s in &mut v {
                    for (x, t) in s.vals.iter_mut().zip(&self.steps) {
                        if present(*x) {
                            *x = *t as f64 / 1000.0;
                        }
                    }
                }
                v
            }
        };
        for s in &mut v {
            s.labels = drop_name(&s.labels);
        }
        Ok(V::Vector(crate::functions::merge_same_labels(v)?))
    }

    /// Like a vector selector, but each step holds the picked sample's time in seconds.
    fn sample_times(&self, sel: &Sel) -> Result<Vec<RS>, Error> {
        self.picked(sel, |ts, _| ts as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_fields_of_known_instants() {
        // 2024-02-29T13:45:10Z, a Thursday, day 60 of a leap year.
        let t = 1_709_214_310.0;
        assert_eq!(date_part(DatePart::Year, t), 2024.0);
        assert_eq!(date_part(DatePart::Month, t), 2.0);
        assert_eq!(date_part(DatePart::DayOfMonth, t), 29.0);
        assert_eq!(date_part(DatePart::DayOfWeek, t), 4.0);
        assert_eq!(date_part(DatePart::DayOfYear, t), 60.0);
        assert_eq!(date_part(DatePart::DaysInMonth, t), 29.0);
        assert_eq!(date_part(DatePart::Hour, t), 13.0);
        assert_eq!(date_part(DatePart::Minute, t), 45.0);
        // 1969-12-31T23:59:59Z and the epoch itself.
        assert_eq!(date_part(DatePart::Year, -1.0), 1969.0);
        assert_eq!(date_part(DatePart::DayOfWeek, 0.0), 4.0);
        assert!(date_part(DatePart::Year, f64::NAN).is_nan());
    }
}
