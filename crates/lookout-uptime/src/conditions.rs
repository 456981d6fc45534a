//! Check conditions: one comparison each, all of a monitor's conditions must pass.
//!
//! The language follows Gatus, whose users like it: `LEFT OP RIGHT` with `==`, `!=`, `<`, `<=`,
//! `>`, `>=`, where a side is a placeholder, a function or a literal.
//!
//! - Placeholders: `[STATUS]`, `[RESPONSE_TIME]` (ms), `[IP]`, `[CONNECTED]`,
//!   `[CERTIFICATE_EXPIRATION]` (ms until the certificate expires), `[DNS_RCODE]`, and `[BODY]`,
//!   optionally with a JSONPath suffix: `[BODY].data[0].id` is RFC 9535's `$.data[0].id`.
//! - Functions: `len([BODY]…)` (array length, else string length), `has([BODY]…)` (the path
//!   exists), and on the right of `==`/`!=` only: `pat(glob)` with `*` wildcards and
//!   `any(a, b, …)`.
//! - Literals: numbers, `true`/`false`, durations (`72h`, `1h30m`, `500ms`, in milliseconds so
//!   they compare with `[RESPONSE_TIME]` and `[CERTIFICATE_EXPIRATION]`), anything else as text.
//!
//! Parsing is written by hand because the grammar is one comparison and its error messages are
//! user-facing; JSONPath, the one rich part, is delegated to `serde_json_path`.

use std::fmt;

use serde_json::Value;
use serde_json_path::JsonPath;

/// What one check observed, for conditions to judge. Fields a check type does not produce stay
/// `None`, and conditions on them fail with a clear reason.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    /// HTTP status code.
    pub status: Option<i64>,
    /// Time to the answer, ms.
    pub response_time_ms: Option<f64>,
    /// The address that was checked.
    pub ip: Option<String>,
    /// Whether a connection was made.
    pub connected: bool,
    /// Time until the certificate expires, ms (negative once expired).
    pub certificate_expiration_ms: Option<i64>,
    /// DNS response code (`NOERROR`, `NXDOMAIN`, …).
    pub dns_rcode: Option<String>,
    /// Response body (HTTP) or reply (TCP), as text.
    pub body: Option<String>,
}

/// A condition that does not parse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid condition {condition:?}: {reason}")]
pub struct ConditionError {
    /// The condition as written.
    pub condition: String,
    /// What is wrong with it.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

#[derive(Debug, Clone)]
enum Placeholder {
    Status,
    ResponseTime,
    Ip,
    Connected,
    CertificateExpiration,
    DnsRcode,
}

#[derive(Debug, Clone)]
enum Term {
    Placeholder(Placeholder),
    /// `[BODY]` with an optional JSONPath, and whether that path can select several nodes
    /// (filters, wildcards, descendants): `len()` of such a path counts the nodes.
    Body(Option<(JsonPath, bool)>),
    Len(Box<Term>),
    Has(Box<Term>),
    Pat(String),
    Any(Vec<String>),
    Literal(String),
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    left: Term,
    op: Op,
    right: Term,
}

impl Condition {
    /// Whether judging this condition needs the response body (`[BODY]`, with or without a
    /// path, also inside `len()` and `has()`): a check none of whose conditions do reads the
    /// body without keeping it.
    pub fn reads_body(&self) -> bool {
        self.left.reads_body() || self.right.reads_body()
    }
}

impl Term {
    fn reads_body(&self) -> bool {
        match self {
            Term::Body(_) => true,
            Term::Len(t) | Term::Has(t) => t.reads_body(),
            _ => false,
        }
    }
}

/// The outcome of one condition on one observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The condition as written.
    pub condition: String,
    /// Whether it held.
    pub passed: bool,
    /// What was compared: `[STATUS] (503) == 200`, or why it could not be.
    pub detail: String,
}

/// A value a term resolves to.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Num(f64),
    Bool(bool),
    Str(String),
    Missing(String),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Val::Num(n) => write!(f, "{n}"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Str(s) => f.write_str(s),
            Val::Missing(why) => write!(f, "<{why}>"),
        }
    }
}

const OPERATORS: [(&str, Op); 6] = [
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
];

/// Parses one condition.
pub fn parse(source: &str) -> Result<Condition, ConditionError> {
    let err = |reason: &str| ConditionError {
        condition: source.to_string(),
        reason: reason.to_string(),
    };
    let (at, len, op) = find_operator(source).ok_or_else(|| {
        let (opens, closes) = source.chars().fold((0, 0), |(o, c), ch| match ch {
            '[' | '(' => (o + 1, c),
            ']' | ')' => (o, c + 1),
            _ => (o, c),
        });
        if opens == closes {
            err("no comparison operator (==, !=, <, <=, >, >=)")
        } else {
            err("unbalanced brackets or parentheses")
        }
    })?;
    let left_src = source.get(..at).unwrap_or("").trim();
    let right_src = source.get(at + len..).unwrap_or("").trim();
    if left_src.is_empty() || right_src.is_empty() {
        return Err(err("a side of the comparison is empty"));
    }
    let left = parse_term(left_src).map_err(|r| err(&r))?;
    let right = parse_term(right_src).map_err(|r| err(&r))?;
    if matches!(left, Term::Pat(_) | Term::Any(_)) {
        return Err(err("pat() and any() go on the right-hand side"));
    }
    if matches!(right, Term::Pat(_) | Term::Any(_)) && !matches!(op, Op::Eq | Op::Ne) {
        return Err(err("pat() and any() only work with == and !="));
    }
    Ok(Condition {
        source: source.trim().to_string(),
        left,
        op,
        right,
    })
}

/// The first comparison operator outside brackets, parentheses and quotes: its byte offset,
/// length and meaning. JSONPath filters such as `[?@.n > 1]` stay inside their brackets.
fn find_operator(s: &str) -> Option<(usize, usize, Op)> {
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'[' | b'(') => depth += 1,
            (None, b']' | b')') => depth -= 1,
            (None, _) if depth == 0 => {
                let rest = bytes.get(i..).unwrap_or_default();
                if let Some((tok, op)) = OPERATORS
                    .iter()
                    .find(|(tok, _)| rest.starts_with(tok.as_bytes()))
                {
                    return Some((i, tok.len(), *op));
                }
            }
            _ => {}
        }
    }
    None
}

fn inner<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    s.strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')
        .map(str::trim)
}

fn parse_term(s: &str) -> Result<Term, String> {
    if let Some(arg) = inner(s, "len") {
        return match parse_term(arg)? {
            t @ Term::Body(_) => Ok(Term::Len(Box::new(t))),
            _ => Err("len() takes [BODY] or a [BODY] path".into()),
        };
    }
    if let Some(arg) = inner(s, "has") {
        return match parse_term(arg)? {
            t @ Term::Body(_) => Ok(Term::Has(Box::new(t))),
            _ => Err("has() takes a [BODY] path".into()),
        };
    }
    if let Some(arg) = inner(s, "pat") {
        return Ok(Term::Pat(unquote(arg).to_string()));
    }
    if let Some(arg) = inner(s, "any") {
        let values: Vec<String> = arg
            .split(',')
            .map(|v| unquote(v.trim()).to_string())
            .collect();
        if values.iter().any(String::is_empty) {
            return Err("any() has an empty value".into());
        }
        return Ok(Term::Any(values));
    }
    if let Some(path) = s.strip_prefix("[BODY]") {
        if path.is_empty() {
            return Ok(Term::Body(None));
        }
        if !(path.starts_with('.') || path.starts_with('[')) {
            return Err(format!(
                "unexpected {path:?} after [BODY]; write [BODY].field or [BODY][0]"
            ));
        }
        let jp = JsonPath::parse(&format!("${path}"))
            .map_err(|e| format!("bad JSONPath in [BODY]{path}: {e}"))?;
        let many = path.contains('?')
            || path.contains('*')
            || path.contains("..")
            || path.contains(':')
            || path.contains(',');
        return Ok(Term::Body(Some((jp, many))));
    }
    let placeholder = match s {
        "[STATUS]" => Some(Placeholder::Status),
        "[RESPONSE_TIME]" => Some(Placeholder::ResponseTime),
        "[IP]" => Some(Placeholder::Ip),
        "[CONNECTED]" => Some(Placeholder::Connected),
        "[CERTIFICATE_EXPIRATION]" => Some(Placeholder::CertificateExpiration),
        "[DNS_RCODE]" => Some(Placeholder::DnsRcode),
        _ => None,
    };
    if let Some(p) = placeholder {
        return Ok(Term::Placeholder(p));
    }
    if s.starts_with('[')
        && s.ends_with(']')
        && s.len() > 2
        && s.chars()
            .skip(1)
            .take(s.len() - 2)
            .all(|c| c.is_ascii_uppercase() || c == '_')
    {
        return Err(format!(
            "unknown placeholder {s}; known: [STATUS], [RESPONSE_TIME], [IP], [CONNECTED], [CERTIFICATE_EXPIRATION], [DNS_RCODE], [BODY]"
        ));
    }
    Ok(Term::Literal(unquote(s).to_string()))
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// A duration literal in ms: `500ms`, `30s`, `5m`, `72h`, `7d`, or combinations like `1h30m`.
fn duration_ms(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            1.0
        } else {
            match c {
                's' => 1_000.0,
                'm' => 60_000.0,
                'h' => 3_600_000.0,
                'd' => 86_400_000.0,
                _ => return None,
            }
        };
        let n: f64 = num.parse().ok()?;
        total += n * unit;
        num.clear();
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

fn literal(s: &str) -> Val {
    match s {
        "true" => Val::Bool(true),
        "false" => Val::Bool(false),
        _ => s
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .or_else(|| duration_ms(s))
            .map_or_else(|| Val::Str(s.to_string()), Val::Num),
    }
}

fn json_val(v: &Value) -> Val {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(|| Val::Str(n.to_string()), Val::Num),
        Value::Bool(b) => Val::Bool(*b),
        Value::String(s) => Val::Str(s.clone()),
        other => Val::Str(other.to_string()),
    }
}

impl Condition {
    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Judges one observation. A missing value (no body, no status) fails the condition.
    pub fn evaluate(&self, obs: &Observation) -> Evaluation {
        let mut parsed_body: Option<Option<Value>> = None;
        let left = resolve(&self.left, obs, &mut parsed_body);
        let passed = match &self.right {
            Term::Pat(glob) => {
                let hit = !matches!(left, Val::Missing(_)) && glob_match(glob, &left.to_string());
                hit == (self.op == Op::Eq)
            }
            Term::Any(values) => {
                let hit = !matches!(left, Val::Missing(_))
                    && values.iter().any(|v| equal(&left, &literal(v)));
                hit == (self.op == Op::Eq)
            }
            right_term => {
                let right = resolve(right_term, obs, &mut parsed_body);
                compare(&left, self.op, &right)
            }
        };
        let right_shown = match &self.right {
            Term::Literal(s) => s.clone(),
            Term::Pat(g) => format!("pat({g})"),
            Term::Any(v) => format!("any({})", v.join(", ")),
            t => resolve(t, obs, &mut parsed_body).to_string(),
        };
        Evaluation {
            condition: self.source.clone(),
            passed,
            detail: format!(
                "{} ({}) {} {}",
                left_label(&self.source),
                shorten(&left.to_string()),
                self.op,
                right_shown
            ),
        }
    }
}

/// The left side as written, for details.
fn left_label(source: &str) -> &str {
    find_operator(source)
        .and_then(|(at, _, _)| source.get(..at))
        .map_or(source, str::trim)
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 80 {
        let mut t: String = s.chars().take(77).collect();
        t.push_str("...");
        t
    } else {
        s.to_string()
    }
}

fn resolve(t: &Term, obs: &Observation, body: &mut Option<Option<Value>>) -> Val {
    let missing = |what: &str| Val::Missing(format!("no {what}"));
    match t {
        Term::Placeholder(Placeholder::Status) => obs
            .status
            .map_or_else(|| missing("status"), |s| Val::Num(s as f64)),
        Term::Placeholder(Placeholder::ResponseTime) => obs
            .response_time_ms
            .map_or_else(|| missing("response time"), Val::Num),
        Term::Placeholder(Placeholder::Ip) => {
            obs.ip.clone().map_or_else(|| missing("IP"), Val::Str)
        }
        Term::Placeholder(Placeholder::Connected) => Val::Bool(obs.connected),
        Term::Placeholder(Placeholder::CertificateExpiration) => obs
            .certificate_expiration_ms
            .map_or_else(|| missing("certificate"), |ms| Val::Num(ms as f64)),
        Term::Placeholder(Placeholder::DnsRcode) => obs
            .dns_rcode
            .clone()
            .map_or_else(|| missing("DNS answer"), Val::Str),
        Term::Body(None) => obs.body.clone().map_or_else(|| missing("body"), Val::Str),
        Term::Body(Some((path, _))) => {
            let Some(text) = &obs.body else {
                return missing("body");
            };
            let doc = body.get_or_insert_with(|| serde_json::from_str(text).ok());
            let Some(doc) = doc else {
                return Val::Missing("body is not JSON".into());
            };
            match path.query(doc).first() {
                Some(v) => json_val(v),
                None => Val::Missing("no such path".into()),
            }
        }
        Term::Len(inner_term) => match (inner_term.as_ref(), resolve(inner_term, obs, body)) {
            (_, m @ Val::Missing(_)) => m,
            (Term::Body(Some((path, many))), _) => {
                let doc = body.as_ref().and_then(Option::as_ref);
                let nodes = doc.map(|d| path.query(d).all()).unwrap_or_default();
                match nodes.as_slice() {
                    _ if *many => Val::Num(nodes.len() as f64),
                    [Value::Array(a)] => Val::Num(a.len() as f64),
                    [Value::String(s)] => Val::Num(s.chars().count() as f64),
                    [other] => Val::Num(other.to_string().chars().count() as f64),
                    _ => Val::Missing("no such path".into()),
                }
            }
            (_, v) => Val::Num(v.to_string().chars().count() as f64),
        },
        Term::Has(inner_term) => {
            Val::Bool(!matches!(resolve(inner_term, obs, body), Val::Missing(_)))
        }
        Term::Literal(s) => literal(s),
        Term::Pat(g) => Val::Str(g.clone()),
        Term::Any(v) => Val::Str(v.join(", ")),
    }
}

fn equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Missing(_), _) | (_, Val::Missing(_)) => false,
        (Val::Num(x), Val::Num(y)) => (x - y).abs() < 1e-9,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (x, y) => x.to_string() == y.to_string(),
    }
}

fn compare(a: &Val, op: Op, b: &Val) -> bool {
    match op {
        Op::Eq => equal(a, b),
        Op::Ne => !matches!(a, Val::Missing(_)) && !equal(a, b),
        _ => match (a, b) {
            (Val::Num(x), Val::Num(y)) => match op {
                Op::Lt => x < y,
                Op::Le => x <= y,
                Op::Gt => x > y,
                Op::Ge => x >= y,
                Op::Eq | Op::Ne => false,
            },
            _ => false,
        },
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(glob: &str, text: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut gi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ti));
                gi += 1;
            }
            Some(c) if Some(c) == t.get(ti) => {
                gi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    gi = sg + 1;
                    ti = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    g.get(gi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Observation {
        Observation {
            status: Some(200),
            response_time_ms: Some(123.0),
            ip: Some("127.0.0.1".into()),
            connected: true,
            certificate_expiration_ms: Some(5 * 86_400_000),
            dns_rcode: Some("NOERROR".into()),
            body: Some(r#"{"status":"UP","data":[{"id":7,"name":"a"},{"id":9}],"version":"1.4.2","ok":true}"#.into()),
        }
    }

    fn check(cond: &str) -> Evaluation {
        parse(cond)
            .unwrap_or_else(|e| panic!("{e}"))
            .evaluate(&obs())
    }

    #[test]
    fn gatus_examples_pass_and_fail_as_written() {
        for c in [
            "[STATUS] == 200",
            "[STATUS] < 300",
            "[RESPONSE_TIME] < 300",
            "[RESPONSE_TIME] <= 1s",
            "[BODY].status == UP",
            "[BODY].data[0].id == 7",
            "[BODY].ok == true",
            "len([BODY].data) == 2",
            "len([BODY].version) == 5",
            "has([BODY].data) == true",
            "has([BODY].missing) == false",
            "[BODY].version == pat(1.4.*)",
            "[STATUS] == any(200, 201, 204)",
            "[CERTIFICATE_EXPIRATION] > 72h",
            "[DNS_RCODE] == NOERROR",
            "[IP] == 127.0.0.1",
            "[CONNECTED] == true",
            "[BODY] == pat(*\"status\":\"UP\"*)",
            "[STATUS]==200",
        ] {
            let e = check(c);
            assert!(e.passed, "{c} should pass: {}", e.detail);
        }
        for c in [
            "[STATUS] == 500",
            "[RESPONSE_TIME] > 1s",
            "[BODY].status != UP",
            "[CERTIFICATE_EXPIRATION] > 7d",
            "[STATUS] != any(200, 204)",
            "[BODY].missing == x",
        ] {
            assert!(!check(c).passed, "{c} should fail");
        }
    }

    #[test]
    fn failures_say_which_value_was_seen() {
        let mut o = obs();
        o.status = Some(503);
        let e = parse("[STATUS] == 200").unwrap().evaluate(&o);
        assert!(!e.passed);
        assert_eq!(e.detail, "[STATUS] (503) == 200");
        let e = check("[BODY].nope == 1");
        assert_eq!(e.detail, "[BODY].nope (<no such path>) == 1");
        let e = parse("[BODY].status == UP")
            .unwrap()
            .evaluate(&Observation {
                body: Some("<html>".into()),
                ..Observation::default()
            });
        assert!(!e.passed && e.detail.contains("body is not JSON"));
        let e = parse("[STATUS] == 200")
            .unwrap()
            .evaluate(&Observation::default());
        assert!(!e.passed && e.detail.contains("no status"));
    }

    #[test]
    fn bad_conditions_are_refused_with_a_reason() {
        for (c, why) in [
            ("[STATUS] 200", "no comparison"),
            ("== 200", "empty"),
            ("[STATUSS] == 200", "unknown placeholder"),
            ("[BODY]status == 1", "after [BODY]"),
            ("[BODY].[[ == 1", "unbalanced"),
            ("[BODY].a[?] == 1", "bad JSONPath"),
            ("len([STATUS]) == 1", "len() takes"),
            ("[STATUS] < any(1, 2)", "only work with"),
            ("pat(x*) == [BODY]", "right-hand side"),
        ] {
            let e = parse(c).expect_err(c);
            assert!(e.reason.contains(why), "{c}: {}", e.reason);
        }
    }

    #[test]
    fn durations_globs_and_operators_inside_brackets() {
        assert_eq!(duration_ms("1h30m"), Some(5_400_000.0));
        assert_eq!(duration_ms("500ms"), Some(500.0));
        assert_eq!(duration_ms("72"), None);
        assert!(glob_match("a*c", "abbbc") && glob_match("*", "") && !glob_match("a*c", "abd"));
        assert!(glob_match("*.example.*", "api.example.com"));
        // A JSONPath filter's comparison stays inside its brackets.
        assert!(check("len([BODY].data[?@.id > 8]) == 1").passed);
        assert!(check("len([BODY].data[*].id) == 2").passed);
    }
}
