//! `lookout query`'s output: a query's answer — run here or by a server — as an aligned text
//! table with numbers and times as people read them (`lookout_core::units`), or as CSV with
//! the values as NRQL returns them.

use lookout_core::units;
use lookout_server::query::nrql::QueryResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A result column, as `POST /api/v1/query` answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Column {
    pub name: String,
    /// `string`, `number`, `boolean`, `timestamp` (epoch ms) or `array`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A query's answer, as `POST /api/v1/query` returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Answer {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Answer {
    /// The answer of a query run here, in the API's shape.
    pub fn of(r: &QueryResult) -> anyhow::Result<Answer> {
        Ok(serde_json::from_value(serde_json::to_value(r)?)?)
    }
}

/// A cell as CSV holds it: strings bare, whole numbers without a fraction, null empty.
fn raw(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A cell as the table shows it: numbers to three significant digits (`0.62`, `12.3`,
/// `4,210`; durations stay in NRQL's seconds), timestamps as UTC date-times.
fn readable(v: &Value, kind: &str) -> String {
    match (v, kind) {
        (Value::Number(n), "timestamp") => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or_else(|| n.to_string(), units::datetime_utc),
        (Value::Number(n), _) => n.as_f64().map_or_else(|| n.to_string(), units::number),
        _ => raw(v),
    }
}

/// The answer as a table: a header, a rule, one line per row; numbers right-aligned.
pub fn table(r: &Answer) -> String {
    let header: Vec<String> = r.columns.iter().map(|c| c.name.clone()).collect();
    let kind = |i: usize| r.columns.get(i).map_or("", |c| c.kind.as_str());
    let body: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, v)| readable(v, kind(i)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .map(|row| row.get(i).map_or(0, |c| c.chars().count()))
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = r.columns.iter().map(|c| c.kind == "number").collect();
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if numeric.get(i).copied().unwrap_or(false) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for row in &body {
        out.push_str(&line(row));
    }
    out
}

/// The answer as CSV with a header row, the values unrounded.
pub fn csv(r: &Answer) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(r.columns.iter().map(|c| c.name.as_str()))?;
    for row in &r.rows {
        w.write_record(row.iter().map(raw))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_rounds_numbers_and_reads_times_while_csv_keeps_them() {
        let a: Answer = serde_json::from_value(json!({
            "columns": [{"name": "name", "type": "string"}, {"name": "begin_time", "type": "timestamp"},
                        {"name": "count(*)", "type": "number"}, {"name": "average(duration)", "type": "number"}],
            "rows": [["GET /a", 1_765_015_402_000_i64, 12345.0, 0.620_318_4], ["GET /b", 1_765_015_462_000_i64, 7.0, null]],
        }))
        .unwrap();
        let t = table(&a);
        let lines: Vec<Vec<&str>> = t
            .lines()
            .map(|l| {
                l.split("  ")
                    .filter(|c| !c.is_empty())
                    .map(str::trim)
                    .collect()
            })
            .collect();
        assert_eq!(
            lines[2],
            ["GET /a", "2025-12-06 10:03:22 UTC", "12,345", "0.62"]
        );
        assert_eq!(lines[3], ["GET /b", "2025-12-06 10:04:22 UTC", "7"]);
        assert_eq!(
            csv(&a).unwrap(),
            "name,begin_time,count(*),average(duration)\nGET /a,1765015402000,12345,0.6203184\nGET /b,1765015462000,7,\n"
        );
    }
}
