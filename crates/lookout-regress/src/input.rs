//! The series files `lookout regress analyze` reads, without a server: CSV, or JSON holding a
//! list of numbers, a list of points (`{"value", "commit", "at"}`), or an object with such a list
//! under `points` or `items` (the shape `GET /api/v1/series/{id}/points` returns).

use serde_json::Value;

/// One measurement, oldest first in a series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    pub value: f64,
    pub commit: Option<String>,
    /// As written in the file (epoch ms, RFC 3339, a date…): shown, never compared.
    pub at: Option<String>,
}

/// Reads a series; `column` names the CSV column to read when there are several.
pub fn parse(text: &str, column: Option<&str>) -> Result<Vec<SeriesPoint>, String> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let points = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        parse_json(trimmed)?
    } else {
        parse_csv(trimmed, column)?
    };
    if points.is_empty() {
        return Err("no points in the file".into());
    }
    Ok(points)
}

fn parse_json(text: &str) -> Result<Vec<SeriesPoint>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("JSON: {e}"))?;
    let list = match &v {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("points").or_else(|| o.get("items")) {
            Some(Value::Array(a)) => a,
            _ => return Err("JSON: expected a list, or an object with a \"points\" list".into()),
        },
        _ => return Err("JSON: expected a list of numbers or points".into()),
    };
    list.iter()
        .enumerate()
        .map(|(i, p)| match p {
            Value::Object(o) => {
                let value = o
                    .get("value")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| format!("[{i}].value: a number is required"))?;
                let text_of = |keys: &[&str]| {
                    keys.iter().find_map(|k| match o.get(*k) {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    })
                };
                finite(value, &format!("[{i}].value"))?;
                Ok(SeriesPoint {
                    value,
                    commit: text_of(&["commit", "commit_sha", "sha"]),
                    at: text_of(&["at", "time", "timestamp"]),
                })
            }
            other => {
                let value = other
                    .as_f64()
                    .ok_or_else(|| format!("[{i}]: expected a number or a point object"))?;
                finite(value, &format!("[{i}]"))?;
                Ok(SeriesPoint {
                    value,
                    commit: None,
                    at: None,
                })
            }
        })
        .collect()
}

fn finite(v: f64, place: &str) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("{place}: {v} is not a finite number"))
    }
}

const COMMIT_COLUMNS: &[&str] = &["commit", "commit_sha", "sha", "revision"];
const TIME_COLUMNS: &[&str] = &["time", "timestamp", "at", "date"];

fn parse_csv(text: &str, column: Option<&str>) -> Result<Vec<SeriesPoint>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("CSV: {e}"))?;
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let numeric = |s: &str| s.parse::<f64>().is_ok();
    let has_header = !first.iter().all(numeric);
    let (header, body): (Vec<String>, &[csv::StringRecord]) = if has_header {
        (
            first.iter().map(|h| h.to_ascii_lowercase()).collect(),
            &rows[1..],
        )
    } else {
        ((0..first.len()).map(|i| i.to_string()).collect(), &rows[..])
    };
    let find = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
    let value_col = match column {
        Some(c) => header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(c))
            .ok_or_else(|| format!("CSV: no column {c:?} (columns: {})", header.join(", ")))?,
        None => match find(&["value"]) {
            Some(i) => i,
            None => {
                let meta = |i: usize| {
                    COMMIT_COLUMNS.contains(&header[i].as_str())
                        || TIME_COLUMNS.contains(&header[i].as_str())
                };
                let candidates: Vec<usize> = (0..header.len())
                    .filter(|&i| !meta(i) && body.iter().all(|r| r.get(i).is_some_and(numeric)))
                    .collect();
                let plain: Vec<usize> = (0..header.len()).filter(|&i| !meta(i)).collect();
                match (candidates.as_slice(), plain.as_slice()) {
                    ([one], _) => *one,
                    // One column of values, some broken: read it, so the error names the line.
                    ([], [one]) => *one,
                    ([], _) => return Err("CSV: no column holds only numbers".into()),
                    (many, _) => {
                        return Err(format!(
                            "CSV: several numeric columns ({}); choose one with --column",
                            many.iter()
                                .map(|&i| header[i].as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    }
                }
            }
        },
    };
    let commit_col = has_header.then(|| find(COMMIT_COLUMNS)).flatten();
    let time_col = has_header.then(|| find(TIME_COLUMNS)).flatten();
    body.iter()
        .enumerate()
        .filter(|(_, r)| !(r.len() == 1 && r.get(0) == Some("")))
        .map(|(i, r)| {
            let line = i + 1 + usize::from(has_header);
            let cell = r.get(value_col).unwrap_or("");
            let value: f64 = cell
                .parse()
                .map_err(|_| format!("CSV line {line}: {cell:?} is not a number"))?;
            finite(value, &format!("CSV line {line}"))?;
            let text_at = |c: Option<usize>| {
                c.and_then(|c| r.get(c))
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            Ok(SeriesPoint {
                value,
                commit: text_at(commit_col),
                at: text_at(time_col),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lists_of_numbers_and_points() {
        assert_eq!(parse("[1, 2.5]", None).unwrap()[1].value, 2.5);
        let p = parse(r#"{"points":[{"value":3,"commit":"abc","at":17}]}"#, None).unwrap();
        assert_eq!(p[0].commit.as_deref(), Some("abc"));
        assert_eq!(p[0].at.as_deref(), Some("17"));
        assert!(parse("[1, \"x\"]", None).unwrap_err().contains("[1]"));
        assert!(parse("[]", None).unwrap_err().contains("no points"));
    }

    #[test]
    fn csv_with_and_without_header() {
        assert_eq!(parse("1\n2\n3\n", None).unwrap().len(), 3);
        let p = parse(
            "time,commit,p95\n2024-01-01,aaa,10\n2024-01-02,bbb,11\n",
            None,
        )
        .unwrap();
        assert_eq!(p[1].value, 11.0);
        assert_eq!(p[1].commit.as_deref(), Some("bbb"));
        let e = parse("a,b\n1,2\n", None).unwrap_err();
        assert!(e.contains("--column"), "{e}");
        assert_eq!(parse("a,b\n1,2\n", Some("B")).unwrap()[0].value, 2.0);
        assert!(parse("v\n1\nx\n", Some("v"))
            .unwrap_err()
            .contains("line 3"));
    }
}
