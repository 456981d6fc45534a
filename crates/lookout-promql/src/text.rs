//! Writing PromQL text from data: a label value as a double-quoted string literal and a series
//! as a selector, so a page or widget that shows labels shows text that parses back to the
//! same series (Rust's `{:?}` would escape non-ASCII characters PromQL keeps as they are).

/// `v` as a PromQL double-quoted string: backslash, double quote and newline escaped, every
/// other character (non-ASCII included) left as it is.
pub fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `name` may be written bare as a metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a label name PromQL accepts bare (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The selector of metric `name` (may be empty) with `labels` matched by equality:
/// `name{a="x"}`, or `{__name__="…", a="x"}` when `name` is not a valid identifier.
pub fn selector(name: &str, labels: &[(&str, &str)]) -> String {
    let mut set: Vec<String> = Vec::with_capacity(labels.len() + 1);
    let bare = name.is_empty() || is_metric_name(name);
    if !bare {
        set.push(format!("__name__={}", quote(name)));
    }
    set.extend(labels.iter().map(|(k, v)| format!("{k}={}", quote(v))));
    let head = if bare { name } else { "" };
    if set.is_empty() && !head.is_empty() {
        head.to_string()
    } else {
        format!("{head}{{{}}}", set.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_as_promql_reads_them() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("line\nnext"), r#""line\nnext""#);
        // Non-ASCII and tabs stay as they are (Debug would write \u{e9} and \t).
        assert_eq!(quote("café\t"), "\"café\t\"");
        assert_eq!(quote("<script>"), r#""<script>""#);
    }

    #[test]
    fn selectors_name_odd_metrics_by_label() {
        assert_eq!(selector("up", &[]), "up");
        assert_eq!(selector("up", &[("job", "a\"b")]), r#"up{job="a\"b"}"#);
        assert_eq!(
            selector("http.requests", &[]),
            r#"{__name__="http.requests"}"#
        );
        assert_eq!(
            selector("9lives", &[("a", "x")]),
            r#"{__name__="9lives", a="x"}"#
        );
        assert_eq!(selector("", &[("a", "x")]), r#"{a="x"}"#);
        assert!(is_metric_name("ns:rate_5m") && !is_metric_name("a-b"));
        assert!(is_label_name("_x1") && !is_label_name("a:b"));
    }

    #[test]
    fn quoted_selectors_parse_back() {
        let text = selector("odd.name", &[("v", "q\"\\\n<é>")]);
        crate::Query::parse(&text).unwrap();
    }
}
