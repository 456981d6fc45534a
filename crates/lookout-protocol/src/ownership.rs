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
//! characters (slashes included), `?` one character; matching ignores ASCII case. Everything is
//! bounded: the text, the rules, owners per rule and pattern length, so a parse or a match costs
//! at most a known amount whatever a project admin saves. Rules compile once, when parsed, into
//! one automaton per kind of text, so matching an event scans each of its (normalised, capped)
//! texts once: at most [`MAX_SCAN_BYTES`] bytes whatever the rules.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Anchored, Input, MatchKind, PatternSet};
use serde_json::Value;

/// Largest rules text, in bytes.
pub const MAX_RULES_BYTES: usize = 64 * 1024;
/// Most rules.
pub const MAX_RULES: usize = 500;
/// Most owners on one rule.
pub const MAX_OWNERS: usize = 20;
/// Longest pattern, in bytes.
pub const MAX_PATTERN: usize = 512;
/// Most wildcards (`*`, `?`) in one pattern: each is a loop in the compiled automaton.
pub const MAX_WILDCARDS: usize = 16;
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

/// Parsed rules, in order, compiled once for matching.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The rules.
    pub rules: Vec<Rule>,
    compiled: Compiled,
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
    if p.bytes().filter(|b| *b == b'*' || *b == b'?').count() > MAX_WILDCARDS {
        return Err(err(
            line,
            format!("the pattern has more than {MAX_WILDCARDS} wildcards (* or ?)"),
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
    let compiled = compile(&rules)?;
    Ok(Rules { rules, compiled })
}

/// Most paths (and modules) of an event that are matched, in-app frames first.
pub const MAX_SUBJECT_PATHS: usize = 50;
/// Longest path, module, URL or tag value matched, in bytes (longer ones are cut).
pub const MAX_SUBJECT_BYTES: usize = 512;
/// Most bytes the compiled rules scan for one event, whatever the rules and the event: each
/// path is scanned twice (as sent and relative), modules, URL and tags once.
pub const MAX_SCAN_BYTES: usize =
    MAX_SUBJECT_BYTES * (3 * MAX_SUBJECT_PATHS + 1 + MAX_SUBJECT_TAGS);
/// Most tags matched.
const MAX_SUBJECT_TAGS: usize = 50;
/// Memory the compiled rules may take; rules past it are refused as too complex.
const REGEX_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// What an event offers to match, normalised once: lowercased, cut to [`MAX_SUBJECT_BYTES`],
/// deduplicated, in-app frames first, at most [`MAX_SUBJECT_PATHS`] paths and modules.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Frame file names and absolute paths.
    pub paths: Vec<String>,
    /// Frame modules.
    pub modules: Vec<String>,
    /// The request URL.
    pub url: Option<String>,
    /// Tags, key and value.
    pub tags: Vec<(String, String)>,
}

/// Lowercase and cut to [`MAX_SUBJECT_BYTES`] on a character boundary.
fn norm(s: &str) -> String {
    let mut end = s.len().min(MAX_SUBJECT_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_ascii_lowercase()
}

/// Normalised, deduplicated, at most [`MAX_SUBJECT_PATHS`], in the order given.
fn norm_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if out.len() >= MAX_SUBJECT_PATHS {
            break;
        }
        let n = norm(i);
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

impl Subject {
    /// A subject from raw values, normalised.
    pub fn new<'a>(
        paths: impl IntoIterator<Item = &'a str>,
        modules: impl IntoIterator<Item = &'a str>,
        url: Option<&str>,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Subject {
        Subject {
            paths: norm_list(paths),
            modules: norm_list(modules),
            url: url.map(norm),
            tags: tags
                .into_iter()
                .take(MAX_SUBJECT_TAGS)
                .map(|(k, v)| (k.to_ascii_lowercase(), norm(v)))
                .collect(),
        }
    }

    /// Reads a normalised event's frames (every exception's stack trace, and the threads') and
    /// request URL; `tags` are the tags as the issue counts them.
    pub fn from_event(body: &Value, tags: &[(String, String)]) -> Subject {
        // `{"values": [...]}`, or the bare list older SDKs send.
        let list = |k: &str| match body.get(k) {
            Some(Value::Array(a)) => Some(a),
            Some(v) => v.get("values").and_then(Value::as_array),
            None => None,
        };
        let frames: Vec<&Value> = ["exception", "threads"]
            .into_iter()
            .filter_map(list)
            .flatten()
            .filter_map(|e| e.pointer("/stacktrace/frames").and_then(Value::as_array))
            .flatten()
            .take(MAX_FRAMES)
            .collect();
        // In-app frames first: they say whose code failed; library frames fill what is left.
        let in_app = |f: &Value| f.get("in_app").and_then(Value::as_bool) == Some(true);
        let ordered = frames
            .iter()
            .filter(|f| in_app(f))
            .chain(frames.iter().filter(|f| !in_app(f)));
        let mut paths = Vec::new();
        let mut modules = Vec::new();
        for f in ordered {
            for k in ["filename", "abs_path"] {
                if let Some(p) = f.get(k).and_then(Value::as_str) {
                    paths.push(p);
                }
            }
            if let Some(m) = f.get("module").and_then(Value::as_str) {
                modules.push(m);
            }
        }
        Subject::new(
            paths,
            modules,
            body.pointer("/request/url").and_then(Value::as_str),
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

/// A glob as a regular-expression fragment: `*` any run, `?` one character, the rest literal
/// (lowercased: texts are lowercased before matching).
/// The automaton works on bytes (`*` is one byte loop, not a UTF-8 decoder); `?` and non-ASCII
/// literals keep Unicode meaning (one character, its UTF-8 bytes).
fn glob_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() * 2);
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push_str("(?u:.)"),
            c if c.is_ascii() => out.push_str(&regex::escape(&c.to_ascii_lowercase().to_string())),
            c => {
                out.push_str("(?u:");
                out.push_str(&regex::escape(&c.to_string()));
                out.push(')');
            }
        }
    }
    out
}

/// Glob match ignoring ASCII case: `*` any run, `?` one character. Compiles the pattern; for
/// one-off checks (the matcher compiles all rules once).
pub fn glob(pattern: &str, text: &str) -> bool {
    Set::build(&[format!("^(?:{})$", glob_regex(pattern))])
        .map(|s| s.is_match(&norm(text)))
        .unwrap_or(false)
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

/// Memory one lazy automaton may use for the states it builds while matching an event; when it
/// has refilled it [`MAX_CACHE_CLEARS`] times the event's matching stops there, so building
/// states (the costly part with many overlapping wildcards) is bounded per event too.
const CACHE_BYTES: usize = 1024 * 1024;
const MAX_CACHE_CLEARS: usize = 2;

/// One automaton for many patterns (anchored, all matches reported) and the rule each of its
/// patterns belongs to.
#[derive(Debug, Clone, Default)]
struct Set {
    dfa: Option<DFA>,
    rule: Vec<usize>,
}

impl Set {
    fn build(patterns: &[String]) -> Result<Set, String> {
        if patterns.is_empty() {
            return Ok(Set::default());
        }
        let dfa = DFA::builder()
            .syntax(
                regex_automata::util::syntax::Config::new()
                    .unicode(false)
                    .utf8(false)
                    .dot_matches_new_line(true),
            )
            .thompson(
                regex_automata::nfa::thompson::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
            )
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(CACHE_BYTES)
                    .skip_cache_capacity_check(true)
                    .minimum_cache_clear_count(Some(MAX_CACHE_CLEARS)),
            )
            .build_many(patterns)
            .map_err(|e| e.to_string())?;
        Ok(Set {
            dfa: Some(dfa),
            rule: Vec::new(),
        })
    }

    fn is_match(&self, text: &str) -> bool {
        let mut work = Work::default();
        let mut hit = vec![false; 1];
        let mut s = self.clone();
        s.rule = vec![0; self.dfa.as_ref().map_or(0, |d| d.pattern_len())];
        s.scan(text, &mut hit, &mut work, &mut None);
        hit.first().copied().unwrap_or(false)
    }

    /// Marks the rules whose pattern matches `text`, counting the bytes scanned. A search that
    /// gives up (its state cache refilled too often) ends the event's matching.
    fn scan(&self, text: &str, hit: &mut [bool], work: &mut Work, cache: &mut Option<Cache>) {
        let Some(dfa) = &self.dfa else { return };
        if work.gave_up || work.bytes >= MAX_SCAN_BYTES {
            return;
        }
        work.bytes += text.len();
        let cache = cache.get_or_insert_with(|| dfa.create_cache());
        let input = Input::new(text.as_bytes()).anchored(Anchored::Yes);
        let mut set = PatternSet::new(dfa.pattern_len());
        if dfa
            .try_which_overlapping_matches(cache, &input, &mut set)
            .is_err()
        {
            work.gave_up = true;
        }
        for p in set.iter() {
            if let Some(h) = self.rule.get(p.as_usize()).and_then(|r| hit.get_mut(*r)) {
                *h = true;
            }
        }
    }
}

/// What matching one event cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Bytes of text scanned (at most [`MAX_SCAN_BYTES`] plus one text).
    pub bytes: usize,
    /// Whether an automaton gave up (the rules are pathological for this event): what matched
    /// until then still counts.
    pub gave_up: bool,
}

/// All rules compiled into one automaton per kind of text, so an event's text is scanned once
/// per kind whatever the number of rules (linear in the text, never pattern × text).
#[derive(Debug, Clone, Default)]
struct Compiled {
    /// Path rules against the path as sent.
    full: Set,
    /// Path and CODEOWNERS rules against the relative path.
    rel: Set,
    module: Set,
    url: Set,
    /// Tag rules against a tag's value; the key is compared after.
    tag: Set,
}

fn compile(rules: &[Rule]) -> Result<Compiled, ParseError> {
    let mut pats: [(Vec<String>, Vec<usize>); 5] = Default::default();
    let [full, rel, module, url, tag] = &mut pats;
    for (i, r) in rules.iter().enumerate() {
        let add = |to: &mut (Vec<String>, Vec<usize>), re: String| {
            to.0.push(re);
            to.1.push(i);
        };
        match &r.matcher {
            Matcher::Path(p) => {
                let g = glob_regex(p);
                add(full, format!("^(?:{g})$"));
                // Unanchored patterns also match below any folder.
                if !p.starts_with('/') && !p.starts_with('*') {
                    add(rel, format!("^(?:{g}|.*/{g})$"));
                } else {
                    add(rel, format!("^(?:{g})$"));
                }
            }
            Matcher::Codeowners(p) => {
                let anchored = p.starts_with('/');
                let mut c = p.trim_start_matches('/').replace("**", "*");
                if c.ends_with('/') {
                    c.push('*');
                }
                let g = glob_regex(&c);
                // Unanchored patterns match at any depth, as in CODEOWNERS.
                add(
                    rel,
                    if anchored {
                        format!("^(?:{g})$")
                    } else {
                        format!("^(?:{g}|.*/{g})$")
                    },
                );
            }
            Matcher::Module(p) => add(module, format!("^(?:{})$", glob_regex(p))),
            Matcher::Url(p) => add(url, format!("^(?:{})$", glob_regex(p))),
            Matcher::Tag { value, .. } => add(tag, format!("^(?:{})$", glob_regex(value))),
        }
    }
    let build = |(p, rule): &(Vec<String>, Vec<usize>)| {
        let mut s = Set::build(p).map_err(|_| {
            err(
                0,
                "the rules are too complex to match quickly; use fewer or shorter patterns",
            )
        })?;
        s.rule = rule.clone();
        Ok::<Set, ParseError>(s)
    };
    Ok(Compiled {
        full: build(full)?,
        rel: build(rel)?,
        module: build(module)?,
        url: build(url)?,
        tag: build(tag)?,
    })
}

impl Rules {
    /// The owners of the last rule the subject matches, if any rule does.
    pub fn owners_of(&self, s: &Subject) -> Option<&[Owner]> {
        self.owners_counted(s).0
    }

    /// [`Rules::owners_of`], with what matching cost.
    pub fn owners_counted(&self, s: &Subject) -> (Option<&[Owner]>, Work) {
        let c = &self.compiled;
        let mut hit = vec![false; self.rules.len()];
        let mut work = Work::default();
        let mut caches: [Option<Cache>; 5] = Default::default();
        let [full, rel, module, url, tag] = &mut caches;
        for p in &s.paths {
            c.full.scan(p, &mut hit, &mut work, full);
            c.rel.scan(relative(p), &mut hit, &mut work, rel);
        }
        for m in &s.modules {
            c.module.scan(m, &mut hit, &mut work, module);
        }
        if let Some(u) = &s.url {
            c.url.scan(u, &mut hit, &mut work, url);
        }
        for (k, v) in &s.tags {
            let mut tag_hit = vec![false; self.rules.len()];
            c.tag.scan(v, &mut tag_hit, &mut work, tag);
            for ((h, r), out) in tag_hit.into_iter().zip(&self.rules).zip(hit.iter_mut()) {
                if h && matches!(&r.matcher, Matcher::Tag { key, .. } if key == k) {
                    *out = true;
                }
            }
        }
        let owners = hit
            .iter()
            .rposition(|h| *h)
            .and_then(|i| self.rules.get(i))
            .map(|r| r.owners.as_slice());
        (owners, work)
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
        let stars = format!("path:a #ok\npath:{} #x\n", "*/".repeat(MAX_WILDCARDS + 1));
        let e = parse(&stars).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("wildcards"), "{e}");
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
        let co = |p: &str, path: &str| {
            parse(&format!("codeowners:{p} #t\n"))
                .unwrap()
                .owners_of(&Subject::new([path], [], None, []))
                .is_some()
        };
        assert!(co("src/api/", "/srv/app/src/api/x.rs"));
        assert!(!co("/src/api/", "/srv/app/src/api/x.rs"));
        assert!(co("*.js", "static/app.js"));
        // Worst case stays cheap: a pattern of stars against a long text.
        let p = "*a".repeat(200);
        assert!(!glob(&p, &"b".repeat(5000)));
    }

    /// The worst an event sender can do against the worst a project admin can save: 500 rules
    /// of 512-byte star patterns (the most the 64 KiB cap allows of them) and an event of 250
    /// frames with 2 KiB paths, modules, a URL and tags. The scan is bounded by the capped
    /// subject, not by rules × text.
    #[test]
    fn worst_case_event_against_max_rules_is_bounded() {
        // 500 rules fit in 64 KiB only when short; the longest patterns fit fewer rules.
        let many: String = (0..MAX_RULES)
            .map(|i| format!("path:*a*{i}*b* #t\n"))
            .collect();
        let long_line = format!(
            "path:{}{} #t\n",
            "*a".repeat(MAX_WILDCARDS),
            "a".repeat(MAX_PATTERN - 2 * MAX_WILDCARDS)
        );
        let long: String = long_line.repeat(MAX_RULES_BYTES / long_line.len());
        for text in [many, long] {
            let rules = parse(&text).expect("max rules parse");
            let frames: Vec<Value> = (0..250)
                .map(|i| {
                    json!({"filename": format!("{i}{}", "a".repeat(2048)),
                           "abs_path": format!("/{i}{}", "a/".repeat(1024)),
                           "module": format!("{i}{}", "a".repeat(2048)), "in_app": i % 2 == 0})
                })
                .collect();
            let body = json!({"exception": {"values": [{"stacktrace": {"frames": frames}}]},
                              "request": {"url": "a".repeat(4096)}});
            let tags: Vec<(String, String)> = (0..200)
                .map(|i| (format!("k{i}"), format!("{i}{}", "a".repeat(2048))))
                .collect();
            let s = Subject::from_event(&body, &tags);
            assert!(s.paths.len() <= MAX_SUBJECT_PATHS);
            assert!(s.paths.iter().all(|p| p.len() <= MAX_SUBJECT_BYTES));
            let started = std::time::Instant::now();
            let (owners, work) = rules.owners_counted(&s);
            // A figure for the record (bench/ownership.sh prints it), never a pass/fail.
            eprintln!(
                "{} rules: {work:?} in {:?}",
                rules.rules.len(),
                started.elapsed()
            );
            let _ = owners;
            assert!(
                work.bytes <= MAX_SCAN_BYTES + MAX_SUBJECT_BYTES,
                "{work:?} > {MAX_SCAN_BYTES}"
            );
        }
    }

    #[test]
    fn in_app_paths_come_first_and_repeat_once() {
        let body = json!({"exception": {"values": [{"stacktrace": {"frames": [
            {"filename": "lib/x.py"}, {"filename": "APP/y.py", "in_app": true},
            {"filename": "lib/x.py"}]}}]}});
        let s = Subject::from_event(&body, &[]);
        assert_eq!(
            s.paths,
            vec!["app/y.py".to_string(), "lib/x.py".to_string()]
        );
    }
}
