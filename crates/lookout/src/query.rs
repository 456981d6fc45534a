//! `lookout query`'s output: a query result as an aligned text table or as CSV.

use lookout_server::query::nrql::QueryResult;
use serde_json::Value;

/// A cell as text: strings bare, whole numbers without a fraction, null empty.
fn cell(v: &Value) -> String {
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

/// The result as a table: a header, a rule, one line per row; numbers right-aligned.
pub fn table(r: &QueryResult) -> String {
    let header: Vec<String> = r.columns.iter().map(|c| c.name.clone()).collect();
    let body: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| row.iter().map(cell).collect())
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
    let numeric: Vec<bool> = r
        .columns
        .iter()
        .map(|c| c.kind == "number" || c.kind == "timestamp")
        .collect();
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric[i] {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
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

/// The result as CSV with a header row.
pub fn csv(r: &QueryResult) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(r.columns.iter().map(|c| c.name.as_str()))?;
    for row in &r.rows {
        w.write_record(row.iter().map(cell))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}
