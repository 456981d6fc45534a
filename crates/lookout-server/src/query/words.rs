//! What an NRQL figure is called and how its values read, for incident titles and billboards:
//! `SELECT percentile(duration, 95) FROM Transaction` breaching reads "p95 duration 620 ms
//! above 500 ms", and its billboard "620 ms", not the raw NRQL and `0.6203`. NRQL durations are
//! in seconds; people read them in the unit [`lookout_core::units::duration_ms`] picks.

use lookout_core::units;
use lookout_nrql::ast::{Arg, Expr};

/// How a figure's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// NRQL durations: seconds.
    Seconds,
    /// A percentage (0-100).
    Percent,
    /// A count of events.
    Count,
    /// Anything else (Apdex, a custom attribute).
    Plain,
}

/// A figure's name and unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// "p95 duration", "error percentage", "count".
    pub name: String,
    /// How its values read.
    pub unit: Unit,
}

impl Figure {
    /// `v` in the figure's unit: `620 ms`, `5.2 %`, `1,204`.
    pub fn show(&self, v: f64) -> String {
        match self.unit {
            Unit::Seconds => units::duration_ms(v * 1000.0),
            Unit::Percent => units::percent(v),
            Unit::Count => units::count(v),
            Unit::Plain => units::number(v),
        }
    }
}

fn attr(args: &[Arg]) -> Option<&str> {
    args.iter().find_map(|a| match a {
        Arg::Expr(Expr::Attr(a)) => Some(a.as_str()),
        _ => None,
    })
}

fn first_expr(args: &[Arg]) -> Option<&Expr> {
    args.iter().find_map(|a| match a {
        Arg::Expr(e) => Some(e),
        _ => None,
    })
}

fn filter(args: &[Arg]) -> Option<&Expr> {
    args.iter().find_map(|a| match a {
        Arg::Where(e) => Some(e),
        _ => None,
    })
}

/// Durations are `duration` (Transaction, Span, SyntheticCheck) or `*.duration`.
fn unit_of(attr: Option<&str>) -> Unit {
    match attr {
        Some(a) if a == "duration" || a.ends_with(".duration") => Unit::Seconds,
        _ => Unit::Plain,
    }
}

/// What `e` (a condition's first `SELECT` item) is called and how it reads.
pub fn figure(e: &Expr) -> Figure {
    let fallback = || Figure {
        name: e.to_string(),
        unit: Unit::Plain,
    };
    let Expr::Call { name, args } = e else {
        return fallback();
    };
    let a = attr(args);
    let of = |word: &str| a.map_or_else(|| word.to_string(), |a| format!("{word} {a}"));
    match name.to_ascii_lowercase().as_str() {
        "percentile" => {
            let p = args.iter().find_map(|x| match x {
                Arg::Expr(Expr::Number(n)) => Some(*n),
                _ => None,
            });
            Figure {
                name: match p {
                    Some(p) => of(&format!("p{}", units::number(p))),
                    None => of("percentile of"),
                },
                unit: unit_of(a),
            }
        }
        f @ ("average" | "median" | "max" | "min" | "sum" | "latest") => Figure {
            name: of(match f {
                "sum" => "total",
                other => other,
            }),
            unit: unit_of(a),
        },
        "count" => Figure {
            name: a.map_or_else(|| "count".to_string(), |a| format!("count of {a}")),
            unit: Unit::Count,
        },
        "uniquecount" => Figure {
            name: of("unique"),
            unit: Unit::Count,
        },
        "percentage" => Figure {
            name: match filter(args) {
                Some(w) => format!("share where {w}"),
                None => "percentage".into(),
            },
            unit: Unit::Percent,
        },
        "apdex" => Figure {
            name: "Apdex".into(),
            unit: Unit::Plain,
        },
        "rate" => {
            let inner = first_expr(args).map(figure);
            Figure {
                name: match (
                    &inner,
                    args.iter().rev().find_map(|x| match x {
                        Arg::Expr(Expr::Interval(i)) => Some(i.to_string()),
                        _ => None,
                    }),
                ) {
                    (Some(f), Some(per)) => format!("{} per {per}", f.name),
                    (Some(f), None) => format!("rate of {}", f.name),
                    _ => "rate".into(),
                },
                unit: inner.map_or(Unit::Plain, |f| f.unit),
            }
        }
        "filter" => {
            let inner = first_expr(args).map(figure);
            match (inner, filter(args)) {
                (Some(f), Some(w)) => Figure {
                    name: format!("{} where {w}", f.name),
                    unit: f.unit,
                },
                _ => fallback(),
            }
        }
        _ => fallback(),
    }
}

/// The figure of a result column by its name (the expression as written, or an alias, which
/// reads as a plain number).
pub fn of_column(name: &str) -> Figure {
    lookout_nrql::parse(&format!("SELECT {name} FROM Transaction"))
        .ok()
        .and_then(|q| q.select.into_iter().next())
        .filter(|item| item.alias.is_none())
        .map_or(
            Figure {
                name: name.to_string(),
                unit: Unit::Plain,
            },
            |item| figure(&item.expr),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(q: &str) -> Figure {
        let q = lookout_nrql::parse(q).expect("parses");
        figure(&q.select[0].expr)
    }

    #[test]
    fn titles_name_the_figure_in_words_and_read_in_its_unit() {
        let p95 = of("SELECT percentile(duration, 95) FROM Transaction");
        assert_eq!(p95.name, "p95 duration");
        assert_eq!(p95.show(0.6203), "620 ms");
        let err = of("SELECT percentage(count(*), WHERE error IS TRUE) FROM Transaction");
        assert_eq!(err.unit, Unit::Percent);
        assert_eq!(err.show(5.234), "5.23 %");
        assert!(err.name.starts_with("share where error"), "{}", err.name);
        assert_eq!(of("SELECT count(*) FROM Transaction").show(1234.0), "1,234");
        assert_eq!(
            of("SELECT apdex(duration, t: 0.5) FROM Transaction").name,
            "Apdex"
        );
        assert_eq!(
            of("SELECT average(duration) FROM Span").name,
            "average duration"
        );
        // Billboards read their column's unit from its name.
        assert_eq!(of_column("percentile(duration, 95)").show(0.6203), "620 ms");
        assert_eq!(of_column("'Slowest'").show(0.6203), "0.62");
    }
}
