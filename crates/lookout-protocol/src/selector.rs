//! PromQL series selectors as the Prometheus HTTP API takes them in `match[]`:
//! `metric_name{label="value", other=~"re.*", x!="", y!~'z'}`, the name optional when braces
//! hold a matcher. Only selectors: the PromQL evaluator has its own parser for whole
//! expressions; this one is what `/series`, `/labels` and `/label/…/values` need, without
//! pulling in the evaluator.
//!
//! Strings follow PromQL: double or single quotes with Go escapes, or backticks raw. As in
//! Prometheus, a selector must have at least one matcher that does not match the empty string
//! (`{}` or `{job=""}` alone would select every series).

use crate::remote_write::{valid_label_name, valid_metric_name};

/// Longest selector accepted, bytes.
pub const MAX_SELECTOR: usize = 16 * 1024;
/// Most matchers in one selector.
pub const MAX_MATCHERS: usize = 64;

/// A matcher's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

/// One parsed matcher: label name, operator, value (unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Label name; `__name__` for the metric name.
    pub name: String,
    /// Operator.
    pub op: Op,
    /// Value or regular expression.
    pub value: String,
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ident(&mut self, colons: bool) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || c == b'_' || (colons && c == b':');
            if !ok {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default()).into_owned()
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.peek().ok_or("expected a quoted string")?;
        if !matches!(quote, b'"' | b'\'' | b'`') {
            return Err(format!("expected a quoted string at offset {}", self.i));
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek().ok_or("unterminated string")?;
            self.i += 1;
            if c == quote {
                break;
            }
            if c == b'\\' && quote != b'`' {
                let e = self.peek().ok_or("unterminated string")?;
                self.i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'\\' | b'"' | b'\'' => out.push(e),
                    b'x' | b'u' | b'U' => {
                        let n = match e {
                            b'x' => 2,
                            b'u' => 4,
                            _ => 8,
                        };
                        let hex = self.s.get(self.i..self.i + n).ok_or("truncated escape")?;
                        self.i += n;
                        let v = u32::from_str_radix(
                            std::str::from_utf8(hex).map_err(|_| "bad escape")?,
                            16,
                        )
                        .map_err(|_| "bad escape")?;
                        if e == b'x' {
                            out.push(v as u8);
                        } else {
                            let ch = char::from_u32(v).ok_or("bad escape")?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                    // Regular expressions are often written with a single backslash ("\.").
                    // PromQL refuses an unknown escape; so do we, naming it.
                    other => {
                        return Err(format!(
                            "unknown escape sequence \\{} in a string",
                            other as char
                        ))
                    }
                }
            } else {
                out.push(c);
            }
        }
        String::from_utf8(out).map_err(|_| "string is not valid UTF-8".to_string())
    }
}

/// Parses one selector into its matchers (the metric name becomes `__name__="…"`).
pub fn parse(text: &str) -> Result<Vec<Matcher>, String> {
    if text.len() > MAX_SELECTOR {
        return Err(format!("selector longer than {MAX_SELECTOR} bytes"));
    }
    let mut p = P {
        s: text.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    p.ws();
    let name = p.ident(true);
    if !name.is_empty() {
        if !valid_metric_name(&name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        out.push(Matcher {
            name: "__name__".into(),
            op: Op::Eq,
            value: name,
        });
    }
    p.ws();
    if p.peek() == Some(b'{') {
        p.i += 1;
        loop {
            p.ws();
            if p.peek() == Some(b'}') {
                p.i += 1;
                break;
            }
            let label = p.ident(false);
            if label.is_empty() || !valid_label_name(&label) {
                return Err(format!("expected a label name at offset {}", p.i));
            }
            p.ws();
            let op = match (p.peek(), p.s.get(p.i + 1).copied()) {
                (Some(b'='), Some(b'~')) => (Op::Re, 2),
                (Some(b'!'), Some(b'=')) => (Op::Ne, 2),
                (Some(b'!'), Some(b'~')) => (Op::Nre, 2),
                (Some(b'='), _) => (Op::Eq, 1),
                _ => return Err(format!("expected =, !=, =~ or !~ after {label}")),
            };
            p.i += op.1;
            p.ws();
            let value = p.string()?;
            out.push(Matcher {
                name: label,
                op: op.0,
                value,
            });
            if out.len() > MAX_MATCHERS {
                return Err(format!("more than {MAX_MATCHERS} matchers"));
            }
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected , or }} at offset {}", p.i)),
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected {:?} at offset {}: match[] takes a series selector",
            String::from_utf8_lossy(p.s.get(p.i..).unwrap_or_default())
                .chars()
                .take(20)
                .collect::<String>(),
            p.i
        ));
    }
    if out.is_empty() {
        return Err("empty selector".into());
    }
    if out
        .iter()
        .filter(|m| m.name == "__name__" && m.op == Op::Eq)
        .count()
        > 1
    {
        return Err("metric name given twice".into());
    }
    // Whether every matcher accepts "" is checked by the caller, which compiles the regexes.
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, op: Op, value: &str) -> Matcher {
        Matcher {
            name: name.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn selectors_parse_like_promql() {
        assert_eq!(parse("up").unwrap(), vec![m("__name__", Op::Eq, "up")]);
        assert_eq!(
            parse(r#"node_cpu:rate { job = "node", mode!~'idle|iowait' , cpu=~`1.*`,x!="a\"b"}"#)
                .unwrap(),
            vec![
                m("__name__", Op::Eq, "node_cpu:rate"),
                m("job", Op::Eq, "node"),
                m("mode", Op::Nre, "idle|iowait"),
                m("cpu", Op::Re, "1.*"),
                m("x", Op::Ne, "a\"b"),
            ]
        );
        assert_eq!(
            parse(r#"{__name__=~"go_.*",}"#).unwrap(),
            vec![m("__name__", Op::Re, "go_.*")]
        );
        assert_eq!(parse(r#"{a="\u00e9\x41"}"#).unwrap()[0].value, "éA");
    }

    #[test]
    fn bad_selectors_say_why() {
        for bad in [
            "",
            "{}",
            "up{",
            "up{job}",
            r#"up{job="x""#,
            r#"up{job="x"} + 1"#,
            r#"up{1a="x"}"#,
            r#"up{a="\q"}"#,
            "rate(up[5m])",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
