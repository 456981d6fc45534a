//! Database statements normalised for grouping: literals become `?`, `IN (…)` lists collapse,
//! whitespace and comments go. Two executions of one query in the code give one statement, and
//! no customer value (an e-mail in a WHERE clause) reaches the slow-query log.
//!
//! Hand-written: it is a single pass over the text that must not fail on any input (statements
//! are untrusted and may be truncated or not SQL at all), which no SQL parser crate promises.

/// Longest normalised statement kept.
const MAX_LEN: usize = 2_000;

/// `sql` with literals replaced by `?`, lists collapsed to `(?)` and whitespace squeezed.
pub fn normalize(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len().min(MAX_LEN));
    let mut i = 0;
    let mut space = false;
    while i < b.len() && out.len() < MAX_LEN {
        let c = b[i];
        // Comments: `-- …` to end of line, `/* … */`.
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            space = true;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
            space = true;
            continue;
        }
        if c.is_ascii_whitespace() {
            space = true;
            i += 1;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if c == b'\'' {
            // A string literal, with '' as an escaped quote.
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push('?');
            continue;
        }
        let prev_ident = out
            .chars()
            .last()
            .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '$' || p == '.');
        if c.is_ascii_digit() && !prev_ident {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push('?');
            continue;
        }
        // Driver placeholders: psycopg's `%s` and `%(name)s`.
        if c == b'%' && b.get(i + 1) == Some(&b's') {
            i += 2;
            out.push('?');
            continue;
        }
        if c == b'%' && b.get(i + 1) == Some(&b'(') {
            if let Some(close) = b[i..].iter().position(|&x| x == b')') {
                if b.get(i + close + 1) == Some(&b's') {
                    i += close + 2;
                    out.push('?');
                    continue;
                }
            }
        }
        if c == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push('?');
            continue;
        }
        // A multi-byte character: copy it whole.
        let len = utf8_len(c);
        let end = (i + len).min(b.len());
        out.push_str(std::str::from_utf8(&b[i..end]).unwrap_or("?"));
        i = end;
    }
    collapse_lists(&out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// `(?, ?, ?)` → `(?)`, and `VALUES (?), (?)` → `VALUES (?)`.
fn collapse_lists(s: &str) -> String {
    let mut out = s.replace("?, ?", "?").replace("?,?", "?");
    while out.contains("?, ?") || out.contains("?,?") {
        out = out.replace("?, ?", "?").replace("?,?", "?");
    }
    while out.contains("(?), (?)") {
        out = out.replace("(?), (?)", "(?)");
    }
    out
}

/// A short low-cardinality name for a statement, as `db.query.summary` would give it:
/// the operation and the first table, e.g. `SELECT users`.
pub fn summary(normalized: &str) -> String {
    let words: Vec<&str> = normalized
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let Some(op) = words.first() else {
        return String::new();
    };
    let op = op.to_ascii_uppercase();
    let after = match op.as_str() {
        "SELECT" | "DELETE" => "FROM",
        "INSERT" | "REPLACE" => "INTO",
        "UPDATE" => "UPDATE",
        _ => return op,
    };
    let table = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case(after))
        .and_then(|p| words.get(p + 1))
        .map(|t| t.trim_matches('"').trim_matches('`'));
    match table {
        Some(t) if t != "?" => format!("{op} {t}"),
        _ => op,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_lists_become_placeholders() {
        assert_eq!(
            normalize(
                "SELECT * FROM users WHERE email = 'a@b.c' AND id IN (1, 2, 3)  -- hi\n LIMIT 10"
            ),
            "SELECT * FROM users WHERE email = ? AND id IN (?) LIMIT ?"
        );
        assert_eq!(
            normalize("insert into t2 (a, b) values ($1, $2), ($3, $4)"),
            "insert into t2 (a, b) values (?)"
        );
        assert_eq!(
            normalize("SELECT 'it''s' /* x */ FROM t1"),
            "SELECT ? FROM t1"
        );
    }

    #[test]
    fn summaries_name_operation_and_table() {
        assert_eq!(summary("SELECT a FROM users WHERE id = ?"), "SELECT users");
        assert_eq!(
            summary("insert into orders (a) values (?)"),
            "INSERT orders"
        );
        assert_eq!(summary("UPDATE \"stock\" SET n = ?"), "UPDATE stock");
        assert_eq!(summary("BEGIN"), "BEGIN");
        assert_eq!(summary(""), "");
    }

    #[test]
    fn any_text_is_handled() {
        for s in ["'", "/*", "--", "é'ü", "$", "1e5", "\u{10348}x'"] {
            let _ = summary(&normalize(s));
        }
    }
}
