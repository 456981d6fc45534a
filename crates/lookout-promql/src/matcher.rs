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

/// The compiled size one regular expression may reach, per byte of its text: plain text and
/// alternations of names compile to 64-128 bytes a character (the regex crate's default
/// limit is 10 MiB whatever the text). Between [`REGEX_SIZE_MIN`] and [`REGEX_SIZE_MAX`].
const REGEX_SIZE_PER_BYTE: usize = 256;
const REGEX_SIZE_MIN: usize = 64 * 1024;
const REGEX_SIZE_MAX: usize = 2 * 1024 * 1024;
/// The lazy DFA cache of one regular expression (2 MiB by default).
const REGEX_DFA_SIZE_LIMIT: usize = 256 * 1024;
/// Regular expressions one query may hold (matchers and label_replace() together). With the
/// limits above and the 64 KiB query text, a query's regexes stay under about 36 MiB: 16 MiB
/// for the text's worth, 4 MiB of minimum grants, 16 MiB of DFA caches.
pub(crate) const MAX_REGEXES: usize = 64;

/// Compiles a PromQL regular expression the way Prometheus 2 does: `^(?:re)$`, with Go's RE2
/// syntax rewritten where Rust's regex reads it differently ([`go_to_rust`]). The size limits
/// keep a hostile pattern from taking the process's memory.
pub(crate) fn anchored(re: &str) -> Result<Regex, Error> {
    build(re).map_err(|e| Error::bad_data(format!("invalid regular expression {re:?}: {e}")))
}

fn build(re: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{})$", go_to_rust(re)))
        .size_limit(
            re.len()
                .saturating_mul(REGEX_SIZE_PER_BYTE)
                .clamp(REGEX_SIZE_MIN, REGEX_SIZE_MAX),
        )
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
}

/// Whether `re` compiles past the size limit (a refusal before the parser, which compiles
/// every matcher's regex with the crate's larger defaults, sees it).
pub(crate) fn too_big(re: &str) -> bool {
    matches!(build(re), Err(regex::Error::CompiledTooBig(_)))
}

/// Go's RE2 syntax as Rust's regex reads it:
/// - `\d \w \s \b` (and their negations) are ASCII-only in Go, Unicode in Rust: written out
///   as ASCII classes (`\b` as the ASCII word boundary);
/// - a `{` that starts no repetition (`/api/{id}`) is a literal in Go and an error in Rust:
///   escaped, except after `\p`, `\P` and `\x`, whose braces belong to them (`\p{Greek}`);
/// - `&&` and `~~` inside a bracket are Rust's set operations and plain characters in Go:
///   escaped.
fn go_to_rust(re: &str) -> String {
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::with_capacity(re.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&e) = chars.get(i + 1) else {
                out.push(c); // a trailing backslash: the regex crate names the error
                break;
            };
            i += 2;
            match e {
                'd' => out.push_str("[0-9]"),
                'D' => out.push_str("[^0-9]"),
                'w' => out.push_str("[0-9A-Za-z_]"),
                'W' => out.push_str("[^0-9A-Za-z_]"),
                's' => out.push_str("[\\t\\n\\x0C\\r ]"),
                'S' => out.push_str("[^\\t\\n\\x0C\\r ]"),
                'b' if !in_class => out.push_str("(?-u:\\b)"),
                'B' if !in_class => out.push_str("(?-u:\\B)"),
                'p' | 'P' | 'x' if chars.get(i) == Some(&'{') => {
                    out.push('\\');
                    out.push(e);
                    while i < chars.len() {
                        out.push(chars[i]);
                        i += 1;
                        if chars[i - 1] == '}' {
                            break;
                        }
                    }
                }
                _ => {
                    out.push('\\');
                    out.push(e);
                }
            }
            continue;
        }
        i += 1;
        if in_class {
            match c {
                ']' => in_class = false,
                // A POSIX class `[:alpha:]` inside the bracket, copied whole.
                '[' if chars.get(i) == Some(&':') => {
                    out.push(c);
                    while i < chars.len() {
                        out.push(chars[i]);
                        i += 1;
                        if chars[i - 1] == ']' {
                            break;
                        }
                    }
                    continue;
                }
                '[' | '&' | '~' => out.push('\\'),
                _ => {}
            }
            out.push(c);
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push(c);
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` first in the bracket is a literal.
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '{' if !starts_repetition(&chars[i..]) => out.push('\\'),
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Whether the text after a `{` is `n}`, `n,}` or `n,m}`.
fn starts_repetition(rest: &[char]) -> bool {
    let digits = |s: &[char]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(rest);
    if n == 0 {
        return false;
    }
    match rest.get(n) {
        Some('}') => true,
        Some(',') => {
            let m = digits(&rest[n + 1..]);
            rest.get(n + 1 + m) == Some(&'}')
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

    #[test]
    fn go_regex_syntax_is_read_as_go_reads_it() {
        let m = |re: &str, v: &str| Matcher::new("l", MatchOp::Re, re).unwrap().matches(v);
        // \d \w \s \b are ASCII in Go.
        assert!(m(r"\d+", "123"));
        assert!(!m(r"\d+", "١٢٣"), "Arabic-Indic digits are not \\d in Go");
        assert!(!m(r"\w+", "é"));
        assert!(m(r"\W", "é"));
        assert!(m(r"[\w.]+", "a.b_1"));
        assert!(!m(r"[\w]+", "é"));
        assert!(m(r"[^\d]+", "ab"));
        assert!(!m(r"\s", "\u{a0}"), "no-break space is not \\s in Go");
        assert!(m(r"a\sb", "a\tb"));
        assert!(
            m(r".*\bé", "aé"),
            "é is no ASCII word character: a boundary before it"
        );
        // Braces that belong to an escape stay.
        assert!(m(r"\p{Greek}+", "αβ"));
        assert!(m(r"\P{Greek}", "a"));
        assert!(m(r"\x{41}", "A"));
        assert!(m(r"\pL", "é"));
        // Class syntax Rust reads as set operations.
        assert!(m(r"[a&&b]+", "a&b"));
        assert!(m(r"[~~]", "~"));
        assert!(m(r"[]a]+", "]a"));
        assert!(m(r"[[:alpha:]]+", "ab"));
        // A huge compiled program is refused.
        assert!(Matcher::new("l", MatchOp::Re, "(a{1000}){1000}").is_err());
        assert!(too_big("(a{1000}){1000}"));
        assert!(!too_big("a|b"));
    }
}
