//! Ownership rules in the syntax Sentry uses (and CODEOWNERS lines), parsed by a bounded parser
//! and matched against an event.
//!
//! ```text
//! # comments start with '#'
//! path:src/payments/* #payments
//! url:*/checkout/* #payments ada@example.com
//! tag:service:checkout #payments          (Sentry writes tags.service:checkout; both work)
//! module:app.billing.* #billing
//! src/api/ @backend                        (a CODEOWNERS line: @team or @org/team)
//! ```
//!
//! Owners are teams (`#slug`, or `@slug` / `@org/slug` in CODEOWNERS style) or users by email.
//! When several rules match, the last one wins (as in CODEOWNERS and Sentry's auto-assignment),
//! and its first owner that exists is assigned. Patterns are globs: `*` matches any run of
//! characters (slashes included), `?` one character; matching ignores case. Everything is
//! bounded: the text, the rules, owners per rule and pattern length, so a parse or a match costs
//! at most a known amount whatever a project admin saves.

use serde_json::Value;

/// Largest rules text, in bytes.
pub const MAX_RULES_BYTES: usize = 64 * 1024;
/// Most rules.
pub const MAX_RULES: usize = 500;
/// Most owners on one rule.
pub const MAX_OWNERS: usize = 20;
/// Longest pattern, in bytes.
pub const MAX_PATTERN: usize = 512;
/// Longest text a pattern is matched against (longer paths and URLs are cut).
const MAX_SUBJECT: usize = 2048;
/// Most frames of an event whose paths and modules are matched.
const MAX_FRAMES: usize = 250;

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// A frame's file path (`path:`).
    Path(String),
    /// The request URL (`url:`).
    Url(String),
    /// A frame's module (`module:`).
    Module(String),
    /// A tag's value (`tag:key:value`, `tags.key:value`).
    Tag {
        /// The tag key, exactly (ignoring case).
        key: String,
        /// A glob on its value.
        value: String,
    },
    /// A CODEOWNERS path pattern (`src/api/`, `*.js`, `/docs/**`).
    Codeowners(String),
}

/// Who owns what a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A team by slug.
    Team(String),
    /// A user by email.
    Email(String),
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What it matches.
    pub matcher: Matcher,
    /// Its owners, in order.
    pub owners: Vec<Owner>,
    /// Its line in the text (1-based).
    pub line: usize,
}

/// Parsed rules, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The rules.
    pub rules: Vec<Rule>,
}

/// Why rules do not parse: the line (1-based; 0 for the whole text) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The wrong line.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

fn valid_slug(s: &str) -> bool {
    (1..=50).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn owner(line: usize, tok: &str) -> Result<Owner, ParseError> {
    if let Some(slug) = tok.strip_prefix('#') {
        let slug = slug.to_ascii_lowercase();
        return if valid_slug(&slug) {
            Ok(Owner::Team(slug))
        } else {
            Err(err(
                line,
                format!("{tok:?} is not a team slug (#letters-digits-dashes)"),
            ))
        };
    }
    if let Some(name) = tok.strip_prefix('@') {
        // CODEOWNERS names teams `@org/team`; the organization part is ours already.
        let slug = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
        return if valid_slug(&slug) {
            Ok(Owner::Team(slug))
        } else {
            Err(err(
                line,
                format!("{tok:?} is not a team (@team or @org/team)"),
            ))
        };
    }
    let at = tok.find('@');
    if tok.len() <= 254 && at.is_some_and(|i| i > 0 && i + 1 < tok.len()) {
        return Ok(Owner::Email(tok.to_ascii_lowercase()));
    }
    Err(err(
        line,
        format!("owner {tok:?} must be a team (#slug) or a user's email"),
    ))
}

fn pattern(line: usize, p: &str) -> Result<String, ParseError> {
    if p.is_empty() {
        return Err(err(line, "the pattern is empty"));
    }
    if p.len() > MAX_PATTERN {
        return Err(err(
            line,
            format!("the pattern is longer than {MAX_PATTERN} bytes"),
        ));
    }
    Ok(p.to_string())
}

fn matcher(line: usize, tok: &str) -> Result<Matcher, ParseError> {
    let lower = tok.to_ascii_lowercase();
    let after = |prefix: &str| tok.get(prefix.len()..).unwrap_or_default();
    if lower.starts_with("path:") {
        return Ok(Matcher::Path(pattern(line, after("path:"))?));
    }
    if lower.starts_with("url:") {
        return Ok(Matcher::Url(pattern(line, after("url:"))?));
    }
    if lower.starts_with("module:") {
        return Ok(Matcher::Module(pattern(line, after("module:"))?));
    }
    if lower.starts_with("codeowners:") {
        return Ok(Matcher::Codeowners(pattern(line, after("codeowners:"))?));
    }
    let tag = if lower.starts_with("tag:") {
        Some(after("tag:"))
    } else if lower.starts_with("tags.") {
        Some(after("tags."))
    } else {
        None
    };
    if let Some(rest) = tag {
        let Some((key, value)) = rest.split_once(':') else {
            return Err(err(line, "a tag rule is tag:key:value"));
        };
        if key.is_empty() || key.len() > 200 {
            return Err(err(line, "the tag key is empty or too long"));
        }
        return Ok(Matcher::Tag {
            key: key.to_ascii_lowercase(),
            value: pattern(line, value)?,
        });
    }
    if let Some((kind, _)) = tok.split_once(':') {
        if !kind.contains('/') && !kind.contains('*') && !kind.contains('.') {
            return Err(err(
                line,
                format!(
                    "unknown rule type {kind:?}: use path:, url:, tag:, module: or codeowners:"
                ),
            ));
        }
    }
    Ok(Matcher::Codeowners(pattern(line, tok)?))
}

/// Parses rules; the error names the first wrong line.
pub fn parse(text: &str) -> Result<Rules, ParseError> {
    if text.len() > MAX_RULES_BYTES {
        return Err(err(
            0,
            format!("the rules are longer than {MAX_RULES_BYTES} bytes"),
        ));
    }
    let mut rules = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if rules.len() >= MAX_RULES {
            return Err(err(line, format!("at most {MAX_RULES} rules")));
        }
        let mut toks = l.split_whitespace();
        let m = matcher(line, toks.next().unwrap_or_default())?;
        let mut owners = Vec::new();
        for t in toks {
            if owners.len() >= MAX_OWNERS {
                return Err(err(line, format!("at most {MAX_OWNERS} owners per rule")));
            }
            owners.push(owner(line, t)?);
        }
        if owners.is_empty() {
            return Err(err(
                line,
                "a rule needs at least one owner (#team or email)",
            ));
        }
        rules.push(Rule {
            matcher: m,
            owners,
            line,
        });
    }
    Ok(Rules { rules })
}

/// What an event offers to match: frame paths and modules, the request URL, the tags.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    /// Frame file names and absolute paths.
    pub paths: Vec<&'a str>,
    /// Frame modules.
    pub modules: Vec<&'a str>,
    /// The request URL.
    pub url: Option<&'a str>,
    /// Tags, key and value.
    pub tags: Vec<(&'a str, &'a str)>,
}

impl<'a> Subject<'a> {
    /// Reads a normalised event's frames (every exception's stack trace, and the threads') and
    /// request URL; `tags` are the tags as the issue counts them.
    pub fn from_event(body: &'a Value, tags: &'a [(String, String)]) -> Subject<'a> {
        let mut s = Subject {
            url: body.pointer("/request/url").and_then(Value::as_str),
            tags: tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            ..Subject::default()
        };
        // `{"values": [...]}`, or the bare list older SDKs send.
        let list = |k: &str| match body.get(k) {
            Some(Value::Array(a)) => Some(a),
            Some(v) => v.get("values").and_then(Value::as_array),
            None => None,
        };
        let frames = ["exception", "threads"]
            .into_iter()
            .filter_map(list)
            .flatten()
            .filter_map(|e| e.pointer("/stacktrace/frames").and_then(Value::as_array))
            .flatten()
            .take(MAX_FRAMES);
        for f in frames {
            for k in ["filename", "abs_path"] {
                if let Some(p) = f.get(k).and_then(Value::as_str) {
                    s.paths.push(p);
                }
            }
            if let Some(m) = f.get("module").and_then(Value::as_str) {
                s.modules.push(m);
            }
        }
        s
    }
}

/// Glob match ignoring ASCII case: `*` any run, `?` one character. Iterative with one
/// backtrack point, so it costs at most pattern × text steps.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let t: Vec<char> = text
        .chars()
        .take(MAX_SUBJECT)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&tc) = t.get(ti) {
        match p.get(pi) {
            Some(&pc) if pc == '?' || pc == tc => {
                pi += 1;
                ti += 1;
            }
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == '*')
}

/// A path as SDKs send it, without a URL scheme and host (`app:///`, `https://cdn/…`) and
/// without leading `/` or `~/`, so `src/api/*` matches `/app/src/api/x.py`'s relative form too.
fn relative(path: &str) -> &str {
    let p = match path.split_once("://") {
        Some((_, rest)) => rest.find('/').and_then(|j| rest.get(j..)).unwrap_or(""),
        None => path,
    };
    p.trim_start_matches("~/").trim_start_matches('/')
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let rel = relative(path);
    // Unanchored patterns also match below any folder (`src/api/*` in `/srv/app/src/api/x.py`).
    glob(pattern, path)
        || glob(pattern, rel)
        || (!pattern.starts_with('/')
            && !pattern.starts_with('*')
            && glob(&format!("*/{pattern}"), rel))
}

fn codeowners_matches(pattern: &str, path: &str) -> bool {
    let anchored = pattern.starts_with('/');
    let mut p = pattern.trim_start_matches('/').replace("**", "*");
    if p.ends_with('/') {
        p.push('*');
    }
    let rel = relative(path);
    if glob(&p, rel) {
        return true;
    }
    // Unanchored patterns match at any depth, as in CODEOWNERS.
    !anchored && glob(&format!("*/{p}"), rel)
}

impl Rules {
    /// The owners of the last rule the subject matches, if any rule does.
    pub fn owners_of(&self, s: &Subject<'_>) -> Option<&[Owner]> {
        self.rules
            .iter()
            .rev()
            .find(|r| r.matches(s))
            .map(|r| r.owners.as_slice())
    }
}

impl Rule {
    /// Whether the subject matches this rule.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        match &self.matcher {
            Matcher::Path(p) => s.paths.iter().any(|x| path_matches(p, x)),
            Matcher::Codeowners(p) => s.paths.iter().any(|x| codeowners_matches(p, x)),
            Matcher::Module(p) => s.modules.iter().any(|m| glob(p, m)),
            Matcher::Url(p) => s.url.is_some_and(|u| glob(p, u)),
            Matcher::Tag { key, value } => s
                .tags
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(key) && glob(value, v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_sentry_and_codeowners_lines() {
        let r = parse(
            "# owners\n\npath:src/payments/* #payments\ntags.service:checkout Ada@Example.com #pay\nsrc/api/ @acme/backend\n",
        )
        .unwrap();
        assert_eq!(r.rules.len(), 3);
        assert_eq!(r.rules[0].owners, vec![Owner::Team("payments".into())]);
        assert_eq!(r.rules[1].owners[0], Owner::Email("ada@example.com".into()));
        assert_eq!(r.rules[2].owners, vec![Owner::Team("backend".into())]);
        assert_eq!(r.rules[2].line, 5);
    }

    #[test]
    fn names_the_wrong_line() {
        let e = parse("path:a/* #ok\nfoo:bar #x\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unknown rule type"), "{e}");
        assert_eq!(parse("path:a/*\n").unwrap_err().line, 1);
        assert_eq!(parse("path:a/* nobody\n").unwrap_err().line, 1);
        assert!(parse(&"x".repeat(MAX_RULES_BYTES + 1)).is_err());
    }

    #[test]
    fn last_matching_rule_wins() {
        let r = parse("path:src/* #all\npath:src/api/* #api\nurl:*/checkout* #pay\n").unwrap();
        let body = json!({"exception": {"values": [{"stacktrace": {"frames": [
            {"filename": "app:///src/api/users.js", "module": "api.users"}]}}]},
            "request": {"url": "https://shop.example/home"}});
        let tags = vec![("service".to_string(), "checkout".to_string())];
        let s = Subject::from_event(&body, &tags);
        assert_eq!(r.owners_of(&s), Some(&[Owner::Team("api".into())][..]));
        let t = parse("tag:service:check* #pay\nmodule:api.* #mods\n").unwrap();
        assert_eq!(t.owners_of(&s), Some(&[Owner::Team("mods".into())][..]));
        let none = parse("path:lib/* #lib\n").unwrap();
        assert_eq!(none.owners_of(&s), None);
        let bare =
            json!({"exception": [{"stacktrace": {"frames": [{"abs_path": "/srv/lib/db.py"}]}}]});
        assert_eq!(
            none.owners_of(&Subject::from_event(&bare, &[])),
            Some(&[Owner::Team("lib".into())][..])
        );
    }

    #[test]
    fn globs_and_codeowners() {
        assert!(glob("src/*.py", "SRC/a/b.py"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a*d", "abc"));
        assert!(codeowners_matches("src/api/", "/srv/app/src/api/x.rs"));
        assert!(!codeowners_matches("/src/api/", "/srv/app/src/api/x.rs"));
        assert!(codeowners_matches("*.js", "static/app.js"));
        // Worst case stays cheap: a pattern of stars against a long text.
        let p = "*a".repeat(200);
        assert!(!glob(&p, &"b".repeat(5000)));
    }
}
