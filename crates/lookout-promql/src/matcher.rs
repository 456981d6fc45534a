//! Label matchers with Prometheus's semantics: a missing label matches as the empty string, and
//! regular expressions are fully anchored (`=~"a.*"` must match the whole value).

use regex::Regex;

use crate::error::Error;

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~` (anchored regular expression)
    Re,
    /// `!~` (anchored regular expression, negated)
    Nre,
}

/// One `name op "value"` condition of a selector, ready for a store to push down.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name (`__name__` for the metric name).
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or the regular expression's text as written (unanchored).
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// A matcher; regular expressions are compiled anchored, and a bad one is a `bad_data` error.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, Error> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(anchored(value)?),
            MatchOp::Eq | MatchOp::Ne => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Whether a label value (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => self.value == value,
            (MatchOp::Ne, _) => self.value != value,
            (MatchOp::Re, Some(re)) => re.is_match(value),
            (MatchOp::Nre, Some(re)) => !re.is_match(value),
            // Unreachable by construction: `new` always compiles the regex for these ops.
            (MatchOp::Re | MatchOp::Nre, None) => false,
        }
    }

    /// Whether a sorted label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &[(String, String)]) -> bool {
        self.matches(label_value(labels, &self.name))
    }
}

/// The value of a label in a label set, the empty string when it is missing.
pub(crate) fn label_value<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Compiles a PromQL regular expression the way Prometheus 2 does: `^(?:re)$`. Go's RE2 reads
/// a `{` that starts no repetition (`/api/{id}`) as a literal where Rust's regex refuses it, so
/// such braces are escaped first. The size limit keeps a hostile pattern from taking the
/// process's memory.
pub(crate) fn anchored(re: &str) -> Result<Regex, Error> {
    regex::RegexBuilder::new(&format!("^(?:{})$", escape_literal_braces(re)))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Error::bad_data(format!("invalid regular expression {re:?}: {e}")))
}

/// `{` escaped unless it starts a repetition `{n}`, `{n,}` or `{n,m}` (or is escaped already).
fn escape_literal_braces(re: &str) -> String {
    let bytes = re.as_bytes();
    let mut out = String::with_capacity(re.len() + 4);
    let mut escaped = false;
    for (i, c) in re.char_indices() {
        if escaped {
            escaped = false;
            out.push(c);
            continue;
        }
        if c == '\\' {
            escaped = true;
        } else if c == '{' && !starts_repetition(&bytes[i + 1..]) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn starts_repetition(rest: &[u8]) -> bool {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = digits(rest);
    if n == 0 {
        return false;
    }
    match rest.get(n) {
        Some(b'}') => true,
        Some(b',') => {
            let m = digits(&rest[n + 1..]);
            rest.get(n + 1 + m) == Some(&b'}')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_are_fully_anchored_and_missing_labels_are_empty() {
        let m = Matcher::new("job", MatchOp::Re, "api|web").unwrap();
        assert!(m.matches("api"));
        assert!(!m.matches("api-2"), "anchored at the end");
        assert!(!m.matches("my-web"), "anchored at the start");
        let empty = Matcher::new("env", MatchOp::Eq, "").unwrap();
        assert!(empty.matches_labels(&[("job".into(), "x".into())]));
        let nre = Matcher::new("env", MatchOp::Nre, ".+").unwrap();
        assert!(nre.matches(""));
        assert!(Matcher::new("x", MatchOp::Re, "(").is_err());
        // Go reads a brace that starts no repetition as a literal; so do we.
        let braces = Matcher::new("path", MatchOp::Re, "/api/{id}/x{2}").unwrap();
        assert!(braces.matches("/api/{id}/xx"));
        assert!(Matcher::new("path", MatchOp::Re, r"a\{b")
            .unwrap()
            .matches("a{b"));
    }
}
