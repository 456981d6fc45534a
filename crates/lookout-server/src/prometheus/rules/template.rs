//! Alerting rules' label and annotation templates, expanded as Prometheus expands them
//! (`template/template.go` and `rules/alerting.go`): Go's `text/template` (the `gotmpl` crate)
//! with `$labels`, `$externalLabels`, `$externalURL` and `$value` defined before the text, and
//! Prometheus's template functions with its output formats.
//!
//! Where gotmpl differs from Go in what a rule template can see, the parsed tree is adjusted
//! before it runs: a printed float is spelled as Go's `%v` spells it (`1e+06`, `+Inf`), and
//! `$labels.missing` is `""` (Prometheus's `missingkey=zero` on a `map[string]string`), not
//! `<no value>`.
//!
//! `query` cannot wait for PromQL inside a template run: a run records the queries it lacks
//! (continuing as if they were empty, its output discarded) and the caller evaluates them and
//! expands again with the results ([`Queries`], [`Expander::wanted_queries`]).
//!
//! Nothing a rule file says can run unbounded: a template over [`MAX_TEMPLATE_BYTES`] is
//! refused, `range` runs at most [`MAX_RANGE_ITERS`] times, every body run and every function
//! call is charged against a work budget (per expansion and per rule evaluation), function
//! arguments and results are capped at [`MAX_STRING_BYTES`], regular expressions at
//! [`REGEX_SIZE_LIMIT`], and the output at the caller's cap.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gotmpl::parse::{
    ActionNode, BranchNode, CommandNode, Expr, ListNode, Node, Number, PipeNode, SmolStr,
};
use gotmpl::{Template, TemplateError, Value};

use super::eval::template_value;

/// Longest template text, bytes: longer ones are refused when the rule file is checked and
/// never run (Prometheus has no limit; real templates are well under a few KiB).
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Most `range` iterations one expansion may run, over all its loops.
pub const MAX_RANGE_ITERS: u64 = 10_000;

/// Work one expansion may do: a unit per node walked, [`CALL_WORK`] per function call, and a
/// unit per byte functions produce. A typical annotation takes under 100; a unit is about 1-2 µs
/// in a debug build, so the worst template stops within a fraction of a second.
pub const MAX_EXPANSION_WORK: i64 = 250_000;

/// Work all the expansions of one rule evaluation may do together (up to 1,000 alerts, each
/// with its labels and annotations): a worst case of seconds in a debug build, less in release.
pub const MAX_RULE_WORK: i64 = 5_000_000;

/// Work charged per function call (a call costs several node walks).
const CALL_WORK: usize = 4;

/// Largest string a template function takes (all its arguments together) or returns, bytes.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// Largest compiled regular expression (`match`, `reReplaceAll`), bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Most distinct `query` expressions one rule evaluation may run.
pub const MAX_QUERIES: usize = 10;

/// The results of the PromQL queries a rule's templates called (`query`), by expression, as
/// (labels, value) samples or the query's error. The caller evaluates what
/// [`Expander::wanted_queries`] lists and expands again with them.
pub type Queries = HashMap<String, Result<Vec<(Vec<(String, String)>, f64)>, String>>;

/// What `query` knows: the results given, as template values, and the expressions asked for
/// that have none yet. `None` results: `query` is not available.
#[derive(Default)]
struct QueryState {
    known: Option<HashMap<String, Result<Value, String>>>,
    wanted: Vec<String>,
    /// A query of the current expansion that had no result.
    missed: Option<String>,
    /// The current expansion called more than [`MAX_QUERIES`] (its error is the one to show).
    refused: bool,
    /// The current expansion failed only for a query without its result.
    pending: bool,
}

/// Regular expressions kept compiled per rule evaluation.
const MAX_CACHED_REGEXES: usize = 64;

/// What Prometheus puts before each template so `$labels` and the others are defined.
const DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
                    {{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Internal functions the tree rewrite calls; their names cannot clash with Prometheus's.
const F_PRINT: &str = "__lookout_print";
const F_LABEL: &str = "__lookout_label";
const F_TICK: &str = "__lookout_tick";

/// The work budget, shared by one rule evaluation's template functions.
#[derive(Default)]
struct Budget {
    expansion: AtomicI64,
    rule: AtomicI64,
}

impl Budget {
    fn charge(&self, units: usize) -> gotmpl::Result<()> {
        let units = i64::try_from(units).unwrap_or(i64::MAX);
        // Saturating: once spent, every later charge only fails.
        let e = self
            .expansion
            .fetch_sub(units, Ordering::Relaxed)
            .saturating_sub(units);
        let r = self
            .rule
            .fetch_sub(units, Ordering::Relaxed)
            .saturating_sub(units);
        if r < 0 {
            return Err(exec_err(format!(
                "the rule's template work budget ({MAX_RULE_WORK}) is spent"
            )));
        }
        if e < 0 {
            return Err(exec_err(format!(
                "the template's work budget ({MAX_EXPANSION_WORK}) is spent"
            )));
        }
        Ok(())
    }
}

fn exec_err(msg: String) -> TemplateError {
    TemplateError::Exec(msg)
}

fn call_err(name: &str, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::Exec(format!("error calling {name}: {msg}"))
}

/// Expands one alerting rule's templates for its alerts, each template parsed once per
/// evaluation. Not shared between threads: [`Expander::expand`] takes `&mut self`.
pub struct Expander {
    name: String,
    external_url: String,
    funcs: gotmpl::FuncMap,
    budget: Arc<Budget>,
    parsed: HashMap<String, Result<Template, String>>,
    warned: HashSet<String>,
    queries: Arc<Mutex<QueryState>>,
}

impl Expander {
    /// For the alerting rule `rule_name`, evaluated at `t_ms` (what `now` returns), on a server
    /// whose public URL is `external_url` (`""` when unknown). `queries`: the results `query`
    /// returns; `None` where no query can be run (`query` is then an error).
    pub fn new(rule_name: &str, external_url: &str, t_ms: i64, queries: Option<&Queries>) -> Self {
        let budget = Arc::new(Budget::default());
        budget.rule.store(MAX_RULE_WORK, Ordering::Relaxed);
        let state = QueryState {
            known: queries.map(|q| {
                q.iter()
                    .map(|(k, r)| {
                        (
                            k.clone(),
                            r.as_ref().map(|v| samples(v)).map_err(Clone::clone),
                        )
                    })
                    .collect()
            }),
            wanted: Vec::new(),
            missed: None,
            refused: false,
            pending: false,
        };
        let queries = Arc::new(Mutex::new(state));
        Expander {
            name: format!("__alert_{rule_name}"),
            external_url: external_url.to_string(),
            funcs: functions(&budget, external_url, t_ms, &queries),
            budget,
            parsed: HashMap::new(),
            warned: HashSet::new(),
            queries,
        }
    }

    /// The `query` expressions the templates called that have no result yet (at most
    /// [`MAX_QUERIES`] with those given), in the order called.
    pub fn wanted_queries(&self) -> Vec<String> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wanted
            .clone()
    }

    /// `text` expanded for an alert with these labels and value, at most `cap` bytes (longer
    /// output is cut there and ends with `…`). On an error, Prometheus's
    /// `<error expanding template: …>` (and a warning, once per template and evaluation).
    pub fn expand(
        &mut self,
        text: &str,
        labels: &[(String, String)],
        value: f64,
        cap: usize,
    ) -> String {
        match self.try_expand(text, labels, value, cap) {
            Ok(s) => s,
            Err(e) => {
                // A query not evaluated yet is for the caller to run, not a template's fault
                // (the runner warns if it still lacks one after its last pass).
                let pending = self
                    .queries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pending;
                if !pending && self.warned.insert(text.to_string()) {
                    tracing::warn!(template = %self.name, error = %e, "Expanding alert template failed.");
                }
                let mut s = format!("<error expanding template: {e}>");
                truncate(&mut s, cap);
                s
            }
        }
    }

    fn try_expand(
        &mut self,
        text: &str,
        labels: &[(String, String)],
        value: f64,
        cap: usize,
    ) -> Result<String, String> {
        {
            let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            q.missed = None;
            q.refused = false;
            q.pending = false;
        }
        if !self.parsed.contains_key(text) {
            let parsed = compile(&self.name, text, &self.funcs);
            self.parsed.insert(text.to_string(), parsed);
        }
        let tmpl = match self.parsed.get(text) {
            Some(Ok(t)) => t,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err("template not parsed".into()),
        };
        self.budget
            .expansion
            .store(MAX_EXPANSION_WORK, Ordering::Relaxed);
        let data = data(labels, value, &self.external_url);
        let mut out = Capped {
            buf: String::new(),
            cap,
            over: false,
        };
        let run = tmpl.execute_template_fmt(&mut out, &self.name, &data);
        // A query without its result yet ran as if empty, to find the template's other
        // queries: the output is not used.
        let missed = {
            let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            let missed = q.missed.take().filter(|_| !q.refused);
            q.pending = missed.is_some();
            missed
        };
        if let Some(q) = missed {
            return Err(format!(
                "error executing template {}: error calling query: {q:?} not evaluated yet",
                self.name
            ));
        }
        match run {
            Ok(()) => {}
            // The cap was reached: what was written so far is kept, cut below.
            Err(_) if out.over => {}
            Err(e) => {
                return Err(format!(
                    "error executing template {}: {}",
                    self.name,
                    plain(&e)
                ))
            }
        }
        truncate(&mut out.buf, cap);
        Ok(out.buf)
    }
}

/// Checks that `text` parses as a template of the alerting rule `rule_name` with Prometheus's
/// functions, as `promtool check rules` checks it.
pub fn check(rule_name: &str, text: &str) -> Result<(), String> {
    let budget = Arc::new(Budget::default());
    compile(
        &format!("__alert_{rule_name}"),
        text,
        &functions(&budget, "", 0, &Arc::default()),
    )
    .map(|_| ())
}

/// gotmpl's message without its generic `execution error: ` prefix.
fn plain(e: &TemplateError) -> String {
    let s = e.to_string();
    s.strip_prefix("execution error: ")
        .map(str::to_string)
        .unwrap_or(s)
}

/// Cuts `s` to `cap` bytes on a character boundary, ending it with `…`.
pub fn truncate(s: &mut String, cap: usize) {
    if s.len() <= cap {
        return;
    }
    let mut end = cap.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
}

/// Output that stops being written past its cap (the template's run then stops with an error
/// the caller recognises by `over`).
struct Capped {
    buf: String,
    cap: usize,
    over: bool,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() > self.cap {
            self.over = true;
            return Err(std::fmt::Error);
        }
        Ok(())
    }
}

/// The data Prometheus gives an alert's templates (`template.AlertTemplateData`).
fn data(labels: &[(String, String)], value: f64, external_url: &str) -> Value {
    let labels: BTreeMap<Arc<str>, Value> = labels
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), Value::String(Arc::from(v.as_str()))))
        .collect();
    let mut m: BTreeMap<Arc<str>, Value> = BTreeMap::new();
    m.insert("Labels".into(), Value::Map(Arc::new(labels)));
    m.insert(
        "ExternalLabels".into(),
        Value::Map(Arc::new(BTreeMap::new())),
    );
    m.insert("ExternalURL".into(), Value::String(external_url.into()));
    m.insert("Value".into(), Value::Float(value));
    Value::Map(Arc::new(m))
}

/// A query's samples as Prometheus gives them to templates: a list of `{Labels, Value}`.
fn samples(v: &[(Vec<(String, String)>, f64)]) -> Value {
    let list: Vec<Value> = v
        .iter()
        .map(|(labels, value)| {
            let labels: BTreeMap<Arc<str>, Value> = labels
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), Value::String(Arc::from(v.as_str()))))
                .collect();
            let mut m: BTreeMap<Arc<str>, Value> = BTreeMap::new();
            m.insert("Labels".into(), Value::Map(Arc::new(labels)));
            m.insert("Value".into(), Value::Float(*value));
            Value::Map(Arc::new(m))
        })
        .collect();
    Value::List(list.into())
}

/// Parses `DEFS` + `text` and adjusts the trees (see the module doc).
fn compile(name: &str, text: &str, funcs: &gotmpl::FuncMap) -> Result<Template, String> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "error parsing template {name}: the template is {} bytes, more than the {MAX_TEMPLATE_BYTES} allowed",
            text.len()
        ));
    }
    let src = format!("{DEFS}{text}");
    let parse_err = |e: String| format!("error parsing template {name}: {e}");
    let mut tmpl = Template::new(name)
        .funcs(funcs.clone())
        .max_range_iters(MAX_RANGE_ITERS)
        .parse(&src)
        .map_err(|e| parse_err(e.to_string()))?;
    let names: Vec<String> = tmpl.templates().iter().map(|s| s.to_string()).collect();
    for n in names {
        let Some(body) = tmpl.lookup(&n) else {
            continue;
        };
        let mut body = body.clone();
        rewrite_list(&mut body, funcs).map_err(|e| parse_err(format!("template: {name}: {e}")))?;
        // Every run of a body is charged for its size (and one for the run): with `template`
        // calls and `range` bodies charged the same way, the nodes walked are bounded by the
        // budget.
        let cost = 1 + list_cost(&body);
        body.nodes.insert(0, tick(body.pos, cost));
        tmpl = tmpl.add_parse_tree(&n, body);
    }
    Ok(tmpl)
}

/// `{{ __lookout_tick N }}`: charges `N` and prints nothing.
fn tick(pos: gotmpl::parse::Pos, cost: usize) -> Node {
    Node::Action(ActionNode {
        pos,
        pipe: PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode {
                pos,
                args: vec![
                    Expr::Identifier(pos, SmolStr::new_static(F_TICK)),
                    Expr::Number(pos, Number::Int(i64::try_from(cost).unwrap_or(i64::MAX))),
                ],
            }],
            is_assign: false,
        },
    })
}

fn list_cost(l: &ListNode) -> usize {
    l.nodes
        .iter()
        .map(|n| {
            1 + match n {
                Node::List(l) => list_cost(l),
                Node::Action(a) => a.pipe.commands.len(),
                Node::If(b) | Node::With(b) | Node::Range(b) => {
                    b.pipe.commands.len()
                        + list_cost(&b.body)
                        + b.else_body.as_ref().map_or(0, list_cost)
                }
                _ => 0,
            }
        })
        .sum()
}

fn rewrite_list(l: &mut ListNode, funcs: &gotmpl::FuncMap) -> Result<(), String> {
    for n in &mut l.nodes {
        match n {
            Node::List(l) => rewrite_list(l, funcs)?,
            Node::Action(a) => {
                rewrite_pipe(&mut a.pipe, funcs)?;
                if a.pipe.decl.is_empty() {
                    // The printed value goes through `__lookout_print` (Go's `%v` for floats).
                    let pos = a.pipe.pos;
                    a.pipe.commands.push(CommandNode {
                        pos,
                        args: vec![Expr::Identifier(pos, SmolStr::new_static(F_PRINT))],
                    });
                }
            }
            Node::If(b) | Node::With(b) => rewrite_branch(b, funcs)?,
            Node::Range(b) => {
                rewrite_branch(b, funcs)?;
                let cost = 1 + list_cost(&b.body);
                b.body.nodes.insert(0, tick(b.body.pos, cost));
            }
            Node::Template(t) => {
                if let Some(p) = &mut t.pipe {
                    rewrite_pipe(p, funcs)?;
                }
            }
            Node::Text(_) | Node::Define(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
    Ok(())
}

fn rewrite_branch(b: &mut BranchNode, funcs: &gotmpl::FuncMap) -> Result<(), String> {
    rewrite_pipe(&mut b.pipe, funcs)?;
    rewrite_list(&mut b.body, funcs)?;
    if let Some(e) = &mut b.else_body {
        rewrite_list(e, funcs)?;
    }
    Ok(())
}

fn rewrite_pipe(p: &mut PipeNode, funcs: &gotmpl::FuncMap) -> Result<(), String> {
    for c in &mut p.commands {
        for e in &mut c.args {
            rewrite_expr(e, funcs)?;
        }
    }
    Ok(())
}

/// Checks function names (Go refuses an unknown one when parsing) and turns `$labels.x` and
/// `.Labels.x` (and the external labels) into `__lookout_label`, which gives `""` for a
/// missing label as Go does for a `map[string]string`.
fn rewrite_expr(e: &mut Expr, funcs: &gotmpl::FuncMap) -> Result<(), String> {
    match e {
        Expr::Identifier(_, name) if !funcs.contains_key(name.as_str()) && !is_builtin(name) => {
            return Err(format!("function {:?} not defined", name.as_str()));
        }
        Expr::Variable(pos, var, fields)
            if (fields.len() == 1 && matches!(var.as_str(), "$labels" | "$externalLabels"))
                || labels_field(fields) =>
        {
            let pos = *pos;
            let (key, map) = fields
                .split_last()
                .map(|(k, m)| (k.to_string(), m.to_vec()))
                .unwrap_or_default();
            *e = label_call(pos, Expr::Variable(pos, var.clone(), map), key);
        }
        Expr::Field(pos, fields) if labels_field(fields) => {
            let pos = *pos;
            let (key, map) = fields
                .split_last()
                .map(|(k, m)| (k.to_string(), m.to_vec()))
                .unwrap_or_default();
            *e = label_call(pos, Expr::Field(pos, map), key);
        }
        Expr::Pipe(_, p) => rewrite_pipe(p, funcs)?,
        Expr::Chain(_, inner, _) => rewrite_expr(inner, funcs)?,
        _ => {}
    }
    Ok(())
}

/// `….Labels.x` or `….ExternalLabels.x`: a label of the alert or of a query's sample.
fn labels_field(fields: &[SmolStr]) -> bool {
    fields.len() >= 2
        && matches!(
            fields[fields.len() - 2].as_str(),
            "Labels" | "ExternalLabels"
        )
}

fn label_call(pos: gotmpl::parse::Pos, map: Expr, key: String) -> Expr {
    Expr::Pipe(
        pos,
        PipeNode {
            pos,
            decl: Vec::new(),
            commands: vec![CommandNode {
                pos,
                args: vec![
                    Expr::Identifier(pos, SmolStr::new_static(F_LABEL)),
                    map,
                    Expr::String(pos, key.into()),
                ],
            }],
            is_assign: false,
        },
    )
}

/// gotmpl's own functions that this module does not replace.
fn is_builtin(name: &str) -> bool {
    matches!(
        name,
        "and" | "or" | "not" | "len" | "slice" | "call" | "eq" | "ne" | "lt" | "le" | "gt" | "ge"
    )
}

// ---- Values as Go prints and converts them ----

/// A value as Go's `fmt` prints it with `%v` (`fmt.Sprint` of one value).
fn go_v(v: &Value) -> String {
    match v {
        Value::Float(f) => template_value(*f),
        Value::Nil => "<nil>".into(),
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// An upper bound of `go_v(v).len()`, without building it.
fn size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::List(l) => l.iter().map(|v| size(v) + 1).sum::<usize>() + 2,
        Value::Map(m) => m.iter().map(|(k, v)| k.len() + size(v) + 2).sum::<usize>() + 5,
        _ => 32,
    }
}

fn arg_str<'a>(name: &str, args: &'a [Value], i: usize) -> gotmpl::Result<&'a str> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(call_err(
            name,
            format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            ),
        )),
        None => Err(call_err(name, "too few arguments")),
    }
}

fn want_args(name: &str, args: &[Value], n: usize) -> gotmpl::Result<()> {
    if args.len() != n {
        return Err(exec_err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// Prometheus's `ConvertToFloat`: a float, an integer, or a string Go's `strconv.ParseFloat`
/// reads.
fn to_float(name: &str, v: &Value) -> gotmpl::Result<f64> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Uint(u) => Ok(*u as f64),
        Value::String(s) => match s.parse::<f64>() {
            Ok(f) if f.is_infinite() && !s.to_ascii_lowercase().contains("inf") => Err(call_err(
                name,
                format!("strconv.ParseFloat: parsing {:?}: value out of range", &**s),
            )),
            Ok(f) => Ok(f),
            Err(_) => Err(call_err(
                name,
                format!("strconv.ParseFloat: parsing {:?}: invalid syntax", &**s),
            )),
        },
        other => Err(call_err(
            name,
            format!("can't convert {} to float", other.type_name()),
        )),
    }
}

/// Go's `fmt.Sprintf("%.4g", v)`.
fn g4(v: f64) -> gotmpl::Result<String> {
    if !v.is_finite() {
        return Ok(template_value(v));
    }
    builtin("printf", &[Value::String("%.4g".into()), Value::Float(v)])
}

/// Runs one of gotmpl's builtins on `args` and returns what it prints: its functions are not
/// reachable from outside the crate except through a template.
fn builtin(name: &str, args: &[Value]) -> gotmpl::Result<String> {
    static CACHE: LazyLock<Mutex<HashMap<String, Arc<Template>>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut src = format!("{{{{{name}");
    for i in 0..args.len() {
        let _ = write!(src, " .a{i}");
    }
    src.push_str("}}");
    let cached = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&src)
        .cloned();
    let tmpl = match cached {
        Some(t) => t,
        None => {
            let t = Arc::new(Template::new("builtin").parse(&src)?);
            let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded by the builtins' names times the arities templates use.
            if cache.len() < 1_000 {
                cache.insert(src, t.clone());
            }
            t
        }
    };
    let data: BTreeMap<Arc<str>, Value> = args
        .iter()
        .enumerate()
        .map(|(i, v)| (Arc::from(format!("a{i}").as_str()), v.clone()))
        .collect();
    tmpl.execute_to_string(&Value::Map(Arc::new(data)))
}

/// `printf`'s format with each float that Go prints differently from gotmpl made a string:
/// a float under a plain `%v` (Go writes `1e+06`, gotmpl `1000000`) and a NaN or infinity
/// under any float verb (Go writes `+Inf`). Formats with explicit argument indexes are left
/// alone.
fn go_printf_args(format: &str, args: &[Value]) -> (String, Vec<Value>) {
    let mut out = String::with_capacity(format.len());
    let mut args = args.to_vec();
    let mut next = 0usize;
    let mut chars = format.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&(_, f)) = chars.peek() {
            if matches!(f, '-' | '+' | '#' | ' ' | '0') {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        let mut precision = false;
        let mut end = format.len();
        let mut verb = None;
        while let Some(&(i, d)) = chars.peek() {
            if d == '[' {
                // Explicit indexes: not rewritten.
                return (format.to_string(), args);
            }
            if d == '*' {
                chars.next();
                next += 1;
                width.push('*');
                continue;
            }
            if d == '.' {
                precision = true;
                chars.next();
                continue;
            }
            if d.is_ascii_digit() {
                if !precision {
                    width.push(d);
                }
                chars.next();
                continue;
            }
            chars.next();
            verb = Some(d);
            end = i + d.len_utf8();
            break;
        }
        let spec = &format[start..end];
        let Some(verb) = verb else {
            out.push_str(spec);
            break;
        };
        if verb == '%' {
            out.push_str(spec);
            continue;
        }
        let i = next;
        next += 1;
        let Some(Value::Float(f)) = args.get(i).cloned() else {
            out.push_str(spec);
            continue;
        };
        let simple = !width.contains('*') && flags.chars().all(|c| c == '-');
        let float_verb = matches!(verb, 'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G');
        if simple && ((verb == 'v' && !precision) || (float_verb && !f.is_finite())) {
            let left = if flags.contains('-') { "-" } else { "" };
            let _ = write!(out, "%{left}{width}s");
            args[i] = Value::String(template_value(f).into());
        } else {
            out.push_str(spec);
        }
    }
    (out, args)
}

/// An upper bound of `printf`'s output: the format, the arguments, and every width and
/// precision written in the format or passed with `*`.
fn printf_size(format: &str, args: &[Value]) -> usize {
    let mut n = format.len() + args.iter().map(|a| size(a) + 32).sum::<usize>();
    let mut digits = 0usize;
    for c in format.chars() {
        match c.to_digit(10) {
            Some(d) => digits = digits.saturating_mul(10).saturating_add(d as usize),
            None => {
                n = n.saturating_add(digits.min(1 << 20));
                digits = 0;
            }
        }
    }
    n = n.saturating_add(digits.min(1 << 20));
    if format.contains('*') {
        for a in args {
            if let Value::Int(i) = a {
                n = n.saturating_add(i.unsigned_abs().min(1 << 20) as usize);
            }
        }
    }
    n
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            s.push(' ');
        }
        s.push_str(&go_v(a));
    }
    s
}

/// Go's comparison of floats when one is a NaN; `None` when gotmpl's own comparison applies
/// (it errors on NaN).
fn nan_compare(name: &str, args: &[Value]) -> Option<bool> {
    let nan = |v: &Value| matches!(v, Value::Float(f) if f.is_nan());
    let all_float = args.iter().all(|v| matches!(v, Value::Float(_)));
    // Go's `gt` is `!le` and `ge` is `!lt`: with a NaN both are true.
    (args.len() >= 2 && all_float && args.iter().any(nan)).then(|| match name {
        "ne" | "gt" | "ge" => true,
        "eq" => {
            let a = args[0].as_float().unwrap_or(f64::NAN);
            args[1..].iter().any(|b| b.as_float() == Some(a))
        }
        _ => false,
    })
}

// ---- Time, as Go prints it ----

/// Prometheus's `floatToTime`: seconds to a time, in milliseconds as `model.Time` keeps it.
fn float_to_ms(name: &str, v: f64) -> gotmpl::Result<i64> {
    if !v.is_finite() {
        return Err(call_err(name, "value is NaN or Inf"));
    }
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(call_err(
            name,
            format!(
                "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
                template_value(v)
            ),
        ));
    }
    // Go's integer division truncates toward zero, as Rust's does.
    Ok((ns as i64) / 1_000_000)
}

/// Go's `time.Time.String()` of a UTC time in milliseconds:
/// `2015-06-23 13:19:44.128 +0000 UTC`.
fn go_time(ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return format!("{ms}");
    };
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = ms.rem_euclid(1000);
    if frac != 0 {
        let f = format!(".{frac:03}");
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `30m0s`, `1.5ms`, `0s`.
fn go_duration(ns: i64) -> String {
    let neg = ns < 0;
    let mut u = ns.unsigned_abs();
    let frac = |u: u64, digits: u32| -> String {
        let p = 10u64.pow(digits);
        let (int, rest) = (u / p, u % p);
        if rest == 0 {
            return int.to_string();
        }
        let f = format!("{rest:0width$}", width = digits as usize);
        format!("{int}.{}", f.trim_end_matches('0'))
    };
    let body = if u < 1_000_000_000 {
        match u {
            0 => "0s".to_string(),
            1..1_000 => format!("{u}ns"),
            1_000..1_000_000 => format!("{}µs", frac(u, 3)),
            _ => format!("{}ms", frac(u, 6)),
        }
    } else {
        let secs_frac = u % 1_000_000_000;
        u /= 1_000_000_000;
        let secs = u % 60;
        u /= 60;
        let mins = u % 60;
        let hours = u / 60;
        let s = frac(secs * 1_000_000_000 + secs_frac, 9);
        if hours > 0 {
            format!("{hours}h{mins}m{s}s")
        } else if mins > 0 {
            format!("{mins}m{s}s")
        } else {
            format!("{s}s")
        }
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

/// Prometheus's `model.ParseDurationAllowNegative`, in seconds.
fn parse_duration(text: &str) -> Result<f64, String> {
    let (neg, s) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let bad = || format!("not a valid duration string: {text:?}");
    let ns: u64 = match s {
        "0" => 0,
        "" => return Err("empty duration string".into()),
        _ => {
            const UNITS: [(&str, u64); 7] = [
                ("y", 365 * 86_400 * 1_000_000_000),
                ("w", 7 * 86_400 * 1_000_000_000),
                ("d", 86_400 * 1_000_000_000),
                ("h", 3_600 * 1_000_000_000),
                ("m", 60 * 1_000_000_000),
                ("s", 1_000_000_000),
                ("ms", 1_000_000),
            ];
            let mut rest = s;
            let mut total: u64 = 0;
            let mut last = 0usize;
            while !rest.is_empty() {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return Err(bad());
                }
                let v: u64 = rest[..digits].parse().map_err(|_| bad())?;
                rest = &rest[digits..];
                let ulen = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
                if ulen == 0 {
                    return Err(bad());
                }
                let unit = &rest[..ulen];
                rest = &rest[ulen..];
                let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
                    return Err(format!("unknown unit {unit:?} in duration {text:?}"));
                };
                if pos < last {
                    return Err(bad());
                }
                last = pos + 1;
                let mult = UNITS[pos].1;
                if v > (1u64 << 63) / mult {
                    return Err("duration out of range".into());
                }
                total += v * mult;
                if total > i64::MAX as u64 {
                    return Err("duration out of range".into());
                }
            }
            total
        }
    };
    let secs = ns as f64 / 1e9;
    Ok(if neg { -secs } else { secs })
}

// ---- Hosts, as Go's net package splits them ----

/// Go's `net.SplitHostPort`, `None` where it returns an error.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, j, k) = if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 == hp.len() || end + 1 != i {
            return None;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or(host);
    match (port.is_empty(), host.contains(':')) {
        (true, _) => host.to_string(),
        (false, true) => format!("[{host}]:{port}"),
        (false, false) => format!("{host}:{port}"),
    }
}

// ---- Case, as Go's strings and x/text/cases change it ----

/// Go's `strings.ToUpper`/`ToLower`: each character's simple case mapping (no `ß` → `SS`).
fn simple_case(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut m: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            match (m.len(), upper) {
                (1, _) => m.remove(0),
                // `İ` lowers to `i` and a combining dot; its simple mapping is `i`.
                (_, false) => m.first().copied().unwrap_or(c),
                _ => c,
            }
        })
        .collect()
}

/// `cases.Title(language.AmericanEnglish, cases.NoLower)`: the first letter of each word in
/// title case, the rest as written. As Prometheus's (checked with its promtool): a word is
/// letters, digits and `_`, with `’` or `·` inside it; `'`, `.`, `:` and the rest break words
/// (`it's` → `It'S`, `example.com` → `Example.Com`); `ß` and ligatures stay as they are.
fn title(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let in_word = i > 0 && {
            let p = chars[i - 1];
            word(p) || (matches!(p, '’' | '·') && i >= 2 && word(chars[i - 2]) && word(c))
        };
        if in_word || !c.is_alphabetic() {
            out.push(c);
            continue;
        }
        // The digraphs have a title case of their own; other letters use their upper case
        // when it is one character.
        let t = match c {
            'Ǆ' | 'ǅ' | 'ǆ' => 'ǅ',
            'Ǉ' | 'ǈ' | 'ǉ' => 'ǈ',
            'Ǌ' | 'ǋ' | 'ǌ' => 'ǋ',
            'Ǳ' | 'ǲ' | 'ǳ' => 'ǲ',
            _ => {
                let mut u = c.to_uppercase();
                match (u.next(), u.next()) {
                    (Some(one), None) => one,
                    _ => c,
                }
            }
        };
        out.push(t);
    }
    out
}

// ---- The function table ----

type Func = Arc<dyn Fn(&[Value]) -> gotmpl::Result<Value> + Send + Sync>;

/// Prometheus's template functions and the builtins this module replaces, each charged to
/// `budget` and bounded in what it takes and returns.
fn functions(
    budget: &Arc<Budget>,
    external_url: &str,
    t_ms: i64,
    queries: &Arc<Mutex<QueryState>>,
) -> gotmpl::FuncMap {
    let regexes: Arc<Mutex<HashMap<String, Result<regex::Regex, String>>>> = Arc::default();
    let mut m: BTreeMap<&'static str, Func> = BTreeMap::new();
    let s = |v: String| Ok(Value::String(v.into()));

    m.insert(
        F_TICK,
        Arc::new({
            let budget = budget.clone();
            move |args: &[Value]| {
                let n = args.first().and_then(Value::as_int).unwrap_or(0);
                budget.charge(usize::try_from(n).unwrap_or(0))?;
                Ok(Value::String("".into()))
            }
        }),
    );
    m.insert(
        F_PRINT,
        Arc::new(|args: &[Value]| match args.last() {
            Some(Value::Float(f)) => Ok(Value::String(template_value(*f).into())),
            Some(v) => Ok(v.clone()),
            None => Ok(Value::Nil),
        }),
    );
    m.insert(
        F_LABEL,
        Arc::new(|args: &[Value]| match (args.first(), args.get(1)) {
            (Some(Value::Map(m)), Some(Value::String(k))) => Ok(m
                .get(&**k)
                .cloned()
                .unwrap_or_else(|| Value::String("".into()))),
            (Some(other), Some(Value::String(k))) => Err(exec_err(format!(
                "can't evaluate field {k} in type {}",
                other.type_name()
            ))),
            _ => Err(exec_err("bad label access".into())),
        }),
    );

    // gotmpl's output builtins, with Go's float spelling.
    m.insert("print", Arc::new(move |args: &[Value]| s(sprint(args))));
    m.insert(
        "println",
        Arc::new(move |args: &[Value]| {
            // Go's `fmt.Sprintln`: spaces between all operands, a newline after.
            let out: Vec<String> = args.iter().map(go_v).collect();
            s(out.join(" ") + "\n")
        }),
    );
    m.insert(
        "printf",
        Arc::new(|args: &[Value]| {
            let format = arg_str("printf", args, 0)?;
            if printf_size(format, &args[1..]) > MAX_STRING_BYTES {
                return Err(call_err(
                    "printf",
                    format!("the output could exceed {MAX_STRING_BYTES} bytes"),
                ));
            }
            let (format, rest) = go_printf_args(format, &args[1..]);
            let mut all = vec![Value::String(format.into())];
            all.extend(rest);
            Ok(Value::String(builtin("printf", &all)?.into()))
        }),
    );
    for name in ["eq", "ne", "lt", "le", "gt", "ge"] {
        m.insert(
            name,
            Arc::new(move |args: &[Value]| {
                if let Some(b) = nan_compare(name, args) {
                    return Ok(Value::Bool(b));
                }
                Ok(Value::Bool(builtin(name, args)? == "true"))
            }),
        );
    }
    m.insert(
        "html",
        Arc::new(move |args: &[Value]| s(gotmpl::html_escape(&escape_input(args)))),
    );
    m.insert(
        "js",
        Arc::new(move |args: &[Value]| s(gotmpl::js_escape(&escape_input(args)))),
    );
    m.insert(
        "urlquery",
        Arc::new(move |args: &[Value]| s(gotmpl::url_encode(&escape_input(args)))),
    );
    m.insert("index", Arc::new(index));

    // Prometheus's functions.
    m.insert(
        "query",
        Arc::new({
            let queries = queries.clone();
            move |args: &[Value]| {
                want_args("query", args, 1)?;
                let q = arg_str("query", args, 0)?;
                let mut st = queries.lock().unwrap_or_else(|e| e.into_inner());
                let QueryState {
                    known,
                    wanted,
                    missed,
                    refused,
                    ..
                } = &mut *st;
                let Some(known) = known else {
                    return Err(call_err("query", "not supported here"));
                };
                match known.get(q) {
                    Some(Ok(v)) => return Ok(v.clone()),
                    Some(Err(e)) => return Err(call_err("query", e)),
                    None => {}
                }
                if !wanted.iter().any(|w| w == q) {
                    if known.len() + wanted.len() >= MAX_QUERIES {
                        *refused = true;
                        return Err(call_err(
                            "query",
                            format!("more than {MAX_QUERIES} queries in one rule evaluation"),
                        ));
                    }
                    wanted.push(q.to_string());
                }
                // The caller runs it and expands again; until then the template goes on as if
                // it were empty, to find its other queries in the same pass.
                missed.get_or_insert_with(|| q.to_string());
                Ok(Value::List(Vec::new().into()))
            }
        }),
    );
    m.insert(
        "first",
        Arc::new(|args: &[Value]| {
            want_args("first", args, 1)?;
            match &args[0] {
                Value::List(l) => l
                    .first()
                    .cloned()
                    .ok_or_else(|| call_err("first", "first() called on vector with no elements")),
                other => Err(call_err(
                    "first",
                    format!("expected a query result, got {}", other.type_name()),
                )),
            }
        }),
    );
    m.insert(
        "label",
        Arc::new(|args: &[Value]| {
            want_args("label", args, 2)?;
            let l = arg_str("label", args, 0)?;
            Ok(args[1]
                .field("Labels")
                .and_then(|m| m.field(l))
                .cloned()
                .unwrap_or_else(|| Value::String("".into())))
        }),
    );
    m.insert(
        "value",
        Arc::new(|args: &[Value]| {
            want_args("value", args, 1)?;
            Ok(args[0].field("Value").cloned().unwrap_or(Value::Nil))
        }),
    );
    m.insert(
        "strvalue",
        Arc::new(|args: &[Value]| {
            want_args("strvalue", args, 1)?;
            Ok(args[0]
                .field("Labels")
                .and_then(|m| m.field("__value__"))
                .cloned()
                .unwrap_or_else(|| Value::String("".into())))
        }),
    );
    m.insert(
        "sortByLabel",
        Arc::new(|args: &[Value]| {
            want_args("sortByLabel", args, 2)?;
            let l = arg_str("sortByLabel", args, 0)?;
            let Value::List(v) = &args[1] else {
                return Err(call_err("sortByLabel", "expected a query result"));
            };
            let key = |s: &Value| {
                s.field("Labels")
                    .and_then(|m| m.field(l))
                    .map(go_v)
                    .unwrap_or_default()
            };
            let mut v: Vec<Value> = v.to_vec();
            v.sort_by_key(key);
            Ok(Value::List(v.into()))
        }),
    );
    m.insert(
        "args",
        Arc::new(|args: &[Value]| {
            let m: BTreeMap<Arc<str>, Value> = args
                .iter()
                .enumerate()
                .map(|(i, a)| (Arc::from(format!("arg{i}").as_str()), a.clone()))
                .collect();
            Ok(Value::Map(Arc::new(m)))
        }),
    );
    m.insert(
        "reReplaceAll",
        Arc::new({
            let regexes = regexes.clone();
            let budget = budget.clone();
            move |args: &[Value]| {
                want_args("reReplaceAll", args, 3)?;
                let (pattern, repl, text) = (
                    arg_str("reReplaceAll", args, 0)?,
                    arg_str("reReplaceAll", args, 1)?,
                    arg_str("reReplaceAll", args, 2)?,
                );
                let re =
                    regex(&regexes, &budget, pattern).map_err(|e| call_err("reReplaceAll", e))?;
                let mut out = String::new();
                let mut last = 0;
                for caps in re.captures_iter(text) {
                    let Some(m) = caps.get(0) else { continue };
                    out.push_str(&text[last..m.start()]);
                    caps.expand(repl, &mut out);
                    last = m.end();
                    if out.len() > MAX_STRING_BYTES {
                        return Err(call_err(
                            "reReplaceAll",
                            format!("the result is over {MAX_STRING_BYTES} bytes"),
                        ));
                    }
                }
                out.push_str(&text[last..]);
                s(out)
            }
        }),
    );
    m.insert(
        "match",
        Arc::new({
            let regexes = regexes.clone();
            let budget = budget.clone();
            move |args: &[Value]| {
                want_args("match", args, 2)?;
                let pattern = arg_str("match", args, 0)?;
                let text = arg_str("match", args, 1)?;
                let re = regex(&regexes, &budget, pattern).map_err(|e| call_err("match", e))?;
                Ok(Value::Bool(re.is_match(text)))
            }
        }),
    );
    m.insert(
        "safeHtml",
        Arc::new(move |args: &[Value]| {
            want_args("safeHtml", args, 1)?;
            s(arg_str("safeHtml", args, 0)?.to_string())
        }),
    );
    m.insert(
        "title",
        Arc::new(move |args: &[Value]| {
            want_args("title", args, 1)?;
            s(title(arg_str("title", args, 0)?))
        }),
    );
    m.insert(
        "toUpper",
        Arc::new(move |args: &[Value]| {
            want_args("toUpper", args, 1)?;
            s(simple_case(arg_str("toUpper", args, 0)?, true))
        }),
    );
    m.insert(
        "toLower",
        Arc::new(move |args: &[Value]| {
            want_args("toLower", args, 1)?;
            s(simple_case(arg_str("toLower", args, 0)?, false))
        }),
    );
    m.insert(
        "graphLink",
        Arc::new(move |args: &[Value]| {
            want_args("graphLink", args, 1)?;
            let e = gotmpl::url_encode(arg_str("graphLink", args, 0)?);
            s(format!("/graph?g0.expr={e}&g0.tab=0"))
        }),
    );
    m.insert(
        "tableLink",
        Arc::new(move |args: &[Value]| {
            want_args("tableLink", args, 1)?;
            let e = gotmpl::url_encode(arg_str("tableLink", args, 0)?);
            s(format!("/graph?g0.expr={e}&g0.tab=1"))
        }),
    );
    m.insert(
        "urlQueryEscape",
        Arc::new(move |args: &[Value]| {
            want_args("urlQueryEscape", args, 1)?;
            s(gotmpl::url_encode(arg_str("urlQueryEscape", args, 0)?))
        }),
    );
    m.insert(
        "stripPort",
        Arc::new(move |args: &[Value]| {
            want_args("stripPort", args, 1)?;
            let hp = arg_str("stripPort", args, 0)?;
            s(split_host_port(hp).map_or(hp, |(h, _)| h).to_string())
        }),
    );
    m.insert(
        "stripDomain",
        Arc::new(move |args: &[Value]| {
            want_args("stripDomain", args, 1)?;
            s(strip_domain(arg_str("stripDomain", args, 0)?))
        }),
    );
    m.insert(
        "humanize",
        Arc::new(move |args: &[Value]| {
            want_args("humanize", args, 1)?;
            let mut v = to_float("humanize", &args[0])?;
            if v == 0.0 || !v.is_finite() {
                return s(g4(v)?);
            }
            let mut prefix = "";
            if v.abs() >= 1.0 {
                for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
                    if v.abs() < 1000.0 {
                        break;
                    }
                    prefix = p;
                    v /= 1000.0;
                }
            } else {
                for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
                    if v.abs() >= 1.0 {
                        break;
                    }
                    prefix = p;
                    v *= 1000.0;
                }
            }
            s(format!("{}{prefix}", g4(v)?))
        }),
    );
    m.insert(
        "humanize1024",
        Arc::new(move |args: &[Value]| {
            want_args("humanize1024", args, 1)?;
            let mut v = to_float("humanize1024", &args[0])?;
            if v.abs() <= 1.0 || !v.is_finite() {
                return s(g4(v)?);
            }
            let mut prefix = "";
            for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
                if v.abs() < 1024.0 {
                    break;
                }
                prefix = p;
                v /= 1024.0;
            }
            s(format!("{}{prefix}", g4(v)?))
        }),
    );
    m.insert(
        "humanizeDuration",
        Arc::new(move |args: &[Value]| {
            want_args("humanizeDuration", args, 1)?;
            let mut v = to_float("humanizeDuration", &args[0])?;
            if !v.is_finite() {
                return s(g4(v)?);
            }
            if v == 0.0 {
                return s(format!("{}s", g4(v)?));
            }
            if v.abs() >= 1.0 {
                let sign = if v < 0.0 { "-" } else { "" };
                v = v.abs();
                // Go's int64 conversion truncates (and saturates here past i64).
                let d = v as i64;
                let (secs, mins, hours, days) =
                    (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
                return s(if days != 0 {
                    format!("{sign}{days}d {hours}h {mins}m {secs}s")
                } else if hours != 0 {
                    format!("{sign}{hours}h {mins}m {secs}s")
                } else if mins != 0 {
                    format!("{sign}{mins}m {secs}s")
                } else {
                    format!("{sign}{}s", g4(v)?)
                });
            }
            let mut prefix = "";
            for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
                if v.abs() >= 1.0 {
                    break;
                }
                prefix = p;
                v *= 1000.0;
            }
            s(format!("{}{prefix}s", g4(v)?))
        }),
    );
    m.insert(
        "humanizePercentage",
        Arc::new(move |args: &[Value]| {
            want_args("humanizePercentage", args, 1)?;
            let v = to_float("humanizePercentage", &args[0])?;
            s(format!("{}%", g4(v * 100.0)?))
        }),
    );
    m.insert(
        "humanizeTimestamp",
        Arc::new(move |args: &[Value]| {
            want_args("humanizeTimestamp", args, 1)?;
            let v = to_float("humanizeTimestamp", &args[0])?;
            if !v.is_finite() {
                return s(g4(v)?);
            }
            s(go_time(float_to_ms("humanizeTimestamp", v)?))
        }),
    );
    m.insert(
        "toTime",
        Arc::new(move |args: &[Value]| {
            want_args("toTime", args, 1)?;
            let v = to_float("toTime", &args[0])?;
            s(go_time(float_to_ms("toTime", v)?))
        }),
    );
    m.insert(
        "toDuration",
        Arc::new(move |args: &[Value]| {
            want_args("toDuration", args, 1)?;
            let v = to_float("toDuration", &args[0])?;
            // Go's conversion of an out-of-range float is unspecified; this saturates.
            s(go_duration((v * 1e9) as i64))
        }),
    );
    m.insert(
        "now",
        Arc::new(move |_: &[Value]| Ok(Value::Float(t_ms as f64 / 1000.0))),
    );
    let url = external_url.to_string();
    // Go's `url.URL.Path` of `http://host` is empty where the url crate says `/`.
    let path = match url::Url::parse(external_url) {
        Ok(u) if u.path() != "/" || external_url.ends_with('/') => u.path().to_string(),
        _ => String::new(),
    };
    m.insert("pathPrefix", Arc::new(move |_: &[Value]| s(path.clone())));
    m.insert("externalURL", Arc::new(move |_: &[Value]| s(url.clone())));
    m.insert(
        "parseDuration",
        Arc::new(move |args: &[Value]| {
            want_args("parseDuration", args, 1)?;
            let d = parse_duration(arg_str("parseDuration", args, 0)?)
                .map_err(|e| call_err("parseDuration", e))?;
            Ok(Value::Float(d))
        }),
    );

    // Every function charged and bounded the same way.
    m.into_iter()
        .map(|(name, f)| {
            let budget = budget.clone();
            let wrapped: gotmpl::ValueFunc = Arc::new(move |args: &[Value]| {
                if name == F_TICK {
                    return f(args);
                }
                // Functions that build strings out of their arguments are refused large ones;
                // the others only pass values on (a query's result may be large).
                let passes = matches!(
                    name,
                    F_PRINT
                        | F_LABEL
                        | "first"
                        | "label"
                        | "value"
                        | "strvalue"
                        | "sortByLabel"
                        | "index"
                        | "args"
                        | "len"
                );
                let input: usize = if passes {
                    0
                } else {
                    args.iter().map(size).sum()
                };
                if input > MAX_STRING_BYTES {
                    return Err(call_err(
                        name,
                        format!("the arguments are over {MAX_STRING_BYTES} bytes"),
                    ));
                }
                budget.charge(CALL_WORK)?;
                let out = f(args)?;
                if let Value::String(s) = &out {
                    if s.len() > MAX_STRING_BYTES {
                        return Err(call_err(
                            name,
                            format!("the result is over {MAX_STRING_BYTES} bytes"),
                        ));
                    }
                    budget.charge(s.len())?;
                }
                Ok(out)
            });
            (name.to_string(), wrapped)
        })
        .collect()
}

/// What `html`, `js` and `urlquery` escape: their one string argument, or all of them as
/// `fmt.Sprint` prints them.
fn escape_input(args: &[Value]) -> String {
    match args {
        [Value::String(s)] => s.to_string(),
        _ => sprint(args),
    }
}

/// Go's `index`: map keys and list positions, one after the other; a missing key of a label
/// map is `""` (`map[string]string`), of another map `<no value>`.
fn index(args: &[Value]) -> gotmpl::Result<Value> {
    let Some((first, keys)) = args.split_first() else {
        return Err(exec_err(
            "wrong number of args for index: want at least 1 got 0".into(),
        ));
    };
    let mut v = first.clone();
    for k in keys {
        v = match (&v, k) {
            (Value::Map(m), Value::String(key)) => match m.get(&**key) {
                Some(x) => x.clone(),
                None if m.values().all(|x| matches!(x, Value::String(_))) => {
                    Value::String("".into())
                }
                None => Value::Nil,
            },
            (Value::List(l), _) => {
                let i = k
                    .as_int()
                    .filter(|_| matches!(k, Value::Int(_) | Value::Uint(_)))
                    .ok_or_else(|| {
                        call_err("index", "cannot index slice/array with non-integer")
                    })?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| l.get(i))
                    .cloned()
                    .ok_or_else(|| call_err("index", format!("index out of range: {i}")))?
            }
            (Value::Nil, _) => return Err(call_err("index", "index of untyped nil")),
            (other, _) => {
                return Err(call_err(
                    "index",
                    format!("can't index item of type {}", other.type_name()),
                ))
            }
        };
    }
    Ok(v)
}

/// A compiled regular expression, cached for the rule's evaluation and charged by size.
fn regex(
    cache: &Mutex<HashMap<String, Result<regex::Regex, String>>>,
    budget: &Budget,
    pattern: &str,
) -> Result<regex::Regex, String> {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = cache.get(pattern) {
        return r.clone();
    }
    budget
        .charge(pattern.len().saturating_mul(16))
        .map_err(|e| plain(&e))?;
    let r = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("error parsing regexp: {e}"));
    if cache.len() < MAX_CACHED_REGEXES {
        cache.insert(pattern.to_string(), r.clone());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 4096;

    fn labels() -> Vec<(String, String)> {
        vec![
            ("instance".into(), "node-1.example.com:9100".into()),
            ("job".into(), "node".into()),
        ]
    }

    /// `text` expanded for the labels above and `value`.
    fn ex(text: &str, value: f64) -> String {
        Expander::new(
            "Test",
            "http://testhost:9090/path/prefix",
            1_353_755_652_000,
            None,
        )
        .expand(text, &labels(), value, CAP)
    }

    /// The output Prometheus's own tests (template/template_test.go) expect.
    fn same(cases: &[(&str, &str)]) {
        for (text, want) in cases {
            assert_eq!(ex(text, 0.0), *want, "{text}");
        }
    }

    #[test]
    fn humanize_functions_print_as_prometheus() {
        same(&[
            ("{{ humanize 1234567.0 }}", "1.235M"),
            ("{{ humanize 0.0 }}:{{ humanize 1.0 }}:{{ humanize .12 }}", "0:1:120m"),
            (r#"{{ humanize "1234567.0" }}:{{ humanize ".12" }}"#, "1.235M:120m"),
            ("{{ humanize -1 }}:{{ humanize 9223372036854775807 }}", "-1:9.223E"),
            ("{{ humanize1024 1048576.0 }}:{{ humanize1024 .12 }}", "1Mi:0.12"),
            ("{{ humanize1024 1234567 }}:{{ humanize1024 -1 }}", "1.177Mi:-1"),
            ("{{ humanize1024 9223372036854775807 }}", "8Ei"),
            (
                "{{ humanizeDuration 0 }}:{{ humanizeDuration 1 }}:{{ humanizeDuration 60 }}",
                "0s:1s:1m 0s",
            ),
            (
                "{{ humanizeDuration 3600 }}:{{ humanizeDuration 86400 }}",
                "1h 0m 0s:1d 0h 0m 0s",
            ),
            ("{{ humanizeDuration 90061 }}", "1d 1h 1m 1s"),
            ("{{ humanizeDuration -183845.0 }}", "-2d 3h 4m 5s"),
            ("{{ humanizeDuration 899.99 }}:{{ humanizeDuration 3.5 }}", "14m 59s:3.5s"),
            (
                "{{ humanizeDuration .1 }}:{{ humanizeDuration .0001 }}:{{ humanizeDuration .12345 }}",
                "100ms:100us:123.5ms",
            ),
            (
                "{{ humanizeDuration 60.5 }}:{{ humanizeDuration 1.2345 }}:{{ humanizeDuration 12.345 }}",
                "1m 0s:1.234s:12.35s",
            ),
            ("{{ humanizeDuration 1234567 }}", "14d 6h 56m 7s"),
            (
                "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
                "-22.22%:0%:12.35%:123.5%",
            ),
            ("{{ humanizePercentage 0.1234 }}", "12.34%"),
            ("{{ humanizePercentage 1234567 }}", "1.235e+08%"),
            ("{{ humanizePercentage 9223372036854775807 }}", "9.223e+20%"),
            (
                "{{ humanizeTimestamp 0 }}:{{ humanizeTimestamp -1 }}",
                "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC",
            ),
            (
                "{{ humanizeTimestamp 1234567 }}:{{ humanizeTimestamp 9223372036 }}",
                "1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC",
            ),
            (
                "{{ 1435065584.128 | humanizeTimestamp }}",
                "2015-06-23 13:19:44.128 +0000 UTC",
            ),
            (
                r#"{{ "1435065584.128" | humanizeTimestamp }}"#,
                "2015-06-23 13:19:44.128 +0000 UTC",
            ),
            ("{{ 1435065584.128 | toTime }}", "2015-06-23 13:19:44.128 +0000 UTC"),
            ("{{ 1800 | toDuration }}:{{ 1.5 | toDuration }}", "30m0s:1.5s"),
            ("{{ now }}", "1.353755652e+09"),
        ]);
        // NaN and the infinities, through every humanizer.
        for (v, s) in [
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(
                ex(
                    "{{ humanize $value }}:{{ humanize1024 $value }}:{{ humanizeDuration $value }}:{{ humanizeTimestamp $value }}",
                    v
                ),
                format!("{s}:{s}:{s}:{s}")
            );
        }
    }

    #[test]
    fn string_and_host_functions_print_as_prometheus() {
        same(&[
            ("plain text", "plain text"),
            ("{{ 1 }}", "1"),
            (r#"{{ "aa bb CC" | title }}"#, "Aa Bb CC"),
            (
                r#"{{ "aa bb CC" | toUpper }}:{{ "aA bB CC" | toLower }}"#,
                "AA BB CC:aa bb cc",
            ),
            (
                r#"{{ match "a+" "aa" }} {{ match "a+" "b" }}"#,
                "true false",
            ),
            (r#"{{ reReplaceAll "(a)b" "x$1" "ab" }}"#, "xa"),
            (
                r#"{{ reReplaceAll ":[0-9]+$" "" $labels.instance }}"#,
                "node-1.example.com",
            ),
            (r#"{{ graphLink "up" }}"#, "/graph?g0.expr=up&g0.tab=0"),
            (
                r#"{{ tableLink "rate(x[5m]) > 1" }}"#,
                "/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+1&g0.tab=1",
            ),
            ("{{ pathPrefix }}", "/path/prefix"),
            (
                "{{ externalURL }}:{{ $externalURL }}",
                "http://testhost:9090/path/prefix:http://testhost:9090/path/prefix",
            ),
            (
                r#"{{ printf "%0.2f" (parseDuration "1h2m10ms") }}"#,
                "3720.01",
            ),
            (
                r#"{{ printf "%0.2f" (parseDuration "-1h2m10ms") }}"#,
                "-3720.01",
            ),
            (r#"{{ "foo.example.com" | stripPort }}"#, "foo.example.com"),
            (
                r#"{{ "foo.example.com:12345" | stripPort }}"#,
                "foo.example.com",
            ),
            (r#"{{ "192.0.2.1:12345" | stripPort }}"#, "192.0.2.1"),
            (r#"{{ "2001:0DB8::1" | stripPort }}"#, "2001:0DB8::1"),
            (
                r#"{{ "[2001:0DB8::1]:12345" | stripPort }}"#,
                "2001:0DB8::1",
            ),
            (
                r#"{{ "[2001:0DB8::1]::12345" | stripPort }}"#,
                "[2001:0DB8::1]::12345",
            ),
            (r#"{{ "foo.example.com" | stripDomain }}"#, "foo"),
            (
                r#"{{ "foo.example.com:12345" | stripDomain }}"#,
                "foo:12345",
            ),
            (
                r#"{{ "192.0.2.1:12345" | stripDomain }}"#,
                "192.0.2.1:12345",
            ),
            (
                r#"{{ "[2001:0DB8::1]:12345" | stripDomain }}"#,
                "[2001:0DB8::1]:12345",
            ),
            (r#"{{ "<b>" | safeHtml }}"#, "<b>"),
            (
                r#"{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}"#,
                "1 2",
            ),
        ]);
    }

    #[test]
    fn labels_values_and_control_flow_as_go_templates() {
        assert_eq!(
            ex(
                "{{ $labels.instance }} ({{ .Labels.job }}) is {{ $value }}",
                3.0
            ),
            "node-1.example.com:9100 (node) is 3"
        );
        // A missing label is empty (`missingkey=zero` on a string map), not `<no value>`.
        assert_eq!(
            ex(
                r#"[{{ $labels.nope }}|{{ .Labels.nope }}|{{ index $labels "nope" }}]"#,
                0.0
            ),
            "[||]"
        );
        assert_eq!(
            ex(r#"{{ if eq $labels.nope "" }}empty{{ end }}"#, 0.0),
            "empty"
        );
        assert_eq!(
            ex("{{ $labels }}", 0.0),
            "map[instance:node-1.example.com:9100 job:node]"
        );
        assert_eq!(
            ex(
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
                0.0
            ),
            "instance=node-1.example.com:9100;job=node;"
        );
        // Floats print as Go's %v, in actions and printf alike.
        for (v, go) in [
            (1e6, "1e+06"),
            (0.25, "0.25"),
            (1e-5, "1e-05"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(ex("{{ $value }}", v), go);
            assert_eq!(ex("{{ .Value }}", v), go);
            assert_eq!(ex(r#"{{ printf "%v" $value }}"#, v), go);
            assert_eq!(ex("{{ print $value }}", v), go);
        }
        assert_eq!(ex(r#"{{ printf "%.2f" $value }}"#, 3.14659), "3.15");
        assert_eq!(ex(r#"{{ printf "%.1f%%" $value }}"#, 99.95), "100.0%");
        assert_eq!(
            ex(r#"{{ printf "%8.3f|%-6v|%d" $value 2.5 7 }}"#, 1.0),
            "   1.000|2.5   |7"
        );
        assert_eq!(
            ex(r#"{{ printf "%.2f" $value }}"#, f64::NEG_INFINITY),
            "-Inf"
        );
        assert_eq!(ex(r#"{{ print 1.5 2 "a" 3 }}"#, 0.0), "1.5 2a3");
        let high =
            r#"{{ if gt $value 80.0 }}high{{ else if gt $value 50.0 }}mid{{ else }}low{{ end }}"#;
        assert_eq!(ex(high, 90.0), "high");
        assert_eq!(ex(high, 60.0), "mid");
        assert_eq!(ex(high, 10.0), "low");
        // With a NaN, Go's `gt` (`!le`) and `ne` are true, `lt` and `eq` false (gotmpl alone
        // would fail); promtool agrees.
        assert_eq!(ex(high, f64::NAN), "high");
        assert_eq!(
            ex(
                "{{ lt $value 1.0 }} {{ ge $value 1.0 }} {{ eq $value 1.0 }} {{ ne $value 1.0 }}",
                f64::NAN
            ),
            "false true false true"
        );
        // Go refuses to compare a float with an integer constant.
        assert!(ex("{{ if gt $value 80 }}x{{ end }}", 90.0).contains("incompatible types"));
        assert_eq!(
            ex(
                "{{ with $labels.job }}job {{ . | toUpper }}{{ end }}{{/* c */}}",
                0.0
            ),
            "job NODE"
        );
        assert_eq!(ex("a  {{- $value -}}  b", 1.5), "a1.5b");
    }

    #[test]
    fn errors_are_written_as_prometheus_writes_them() {
        let e = ex(r#"{{ humanize "one" }}"#, 0.0);
        assert!(
            e.starts_with("<error expanding template: error executing template __alert_Test: ")
                && e.ends_with(
                    r#"error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax>"#
                ),
            "{e}"
        );
        let e = ex("{{", 0.0);
        assert!(
            e.starts_with("<error expanding template: error parsing template __alert_Test: "),
            "{e}"
        );
        let e = ex("{{ nope 1 }}", 0.0);
        assert!(e.contains(r#"function "nope" not defined"#), "{e}");
        let e = ex(r#"{{ query "up" | first | value }}"#, 0.0);
        assert!(e.contains("error calling query: not supported"), "{e}");
        // With query results, `query` asks for what it lacks, at most MAX_QUERIES.
        let mut known = Queries::new();
        known.insert("up".into(), Ok(vec![(labels(), 2.5)]));
        known.insert("bad(".into(), Err("parse error".into()));
        let mut q = Expander::new("Test", "", 0, Some(&known));
        assert_eq!(
            q.expand(r#"{{ query "up" | first | value }}"#, &[], 0.0, CAP),
            "2.5"
        );
        let e = q.expand(r#"{{ query "bad(" }}"#, &[], 0.0, CAP);
        assert!(e.ends_with("error calling query: parse error>"), "{e}");
        let many = |n: usize| -> String {
            (0..n)
                .map(|i| format!(r#"{{{{ with query "q{i}" }}}}{{{{ end }}}}"#))
                .collect()
        };
        // All of a template's queries are found in one pass, the output not used.
        let e = q.expand(&many(5), &[], 0.0, CAP);
        assert!(
            e.ends_with(r#"error calling query: "q0" not evaluated yet>"#),
            "{e}"
        );
        assert_eq!(q.wanted_queries(), ["q0", "q1", "q2", "q3", "q4"]);
        let e = q.expand(&many(20), &[], 0.0, CAP);
        assert!(e.contains("more than 10 queries"), "{e}");
        assert_eq!(
            q.wanted_queries(),
            ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7"]
        );
        let e = ex(r#"{{ humanizeTimestamp "-9223372036854775808" }}"#, 0.0);
        assert!(
            e.contains("-9.223372036854776e+18 cannot be represented as a nanoseconds timestamp"),
            "{e}"
        );
        let e = ex(r#"{{ match "(" "x" }}"#, 0.0);
        assert!(
            e.contains("error calling match: error parsing regexp"),
            "{e}"
        );
        // The rule file check refuses what does not parse, as promtool does.
        assert!(check("A", "{{ $labels.x }} {{ humanize $value }}").is_ok());
        assert!(check("A", "{{ if }}").is_err());
        assert!(check("A", "{{ nope }}")
            .unwrap_err()
            .contains("not defined"));
    }

    #[test]
    fn templates_cannot_run_unbounded() {
        let started = std::time::Instant::now();
        // Over the text limit: refused.
        let big = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(check("A", &big).unwrap_err().contains("more than"));
        // Loops stop at the range budget.
        assert!(ex("{{ range 100000 }}{{ end }}", 0.0).contains("range iteration budget"));
        // Unbounded recursion stops at gotmpl's depth limit.
        let e = ex(
            r#"{{define "a"}}{{template "a"}}{{end}}{{template "a"}}"#,
            0.0,
        );
        assert!(e.contains("recursion limit"), "{e}");
        // Exponential fan-out through templates stops at the work budget.
        let mut fan = String::new();
        for i in 0..60 {
            let _ = write!(
                fan,
                r#"{{{{define "t{i}"}}}}{{{{template "t{n}"}}}}{{{{template "t{n}"}}}}{{{{end}}}}"#,
                n = i + 1
            );
        }
        fan.push_str(r#"{{define "t60"}}{{ $x := 1 }}{{end}}{{template "t0"}}"#);
        let e = ex(&fan, 0.0);
        assert!(e.contains("work budget"), "{e}");
        // So does a string doubled in a loop, and printf's widths.
        let e = ex(
            r#"{{ $s := "xxxxxxxxxxxxxxxx" }}{{ range 64 }}{{ $s = print $s $s }}{{ end }}{{ len $s }}"#,
            0.0,
        );
        assert!(e.contains("over 65536 bytes"), "{e}");
        let e = ex(r#"{{ printf "%65535d%65535d" 1 2 }}"#, 0.0);
        assert!(e.contains("could exceed"), "{e}");
        // `js` doubles each backslash: twenty rounds would make 8 MiB of one.
        let e = ex(&format!("{{{{ `\\\\\\\\` {} }}}}", "| js ".repeat(20)), 0.0);
        assert!(e.contains("bytes"), "{e}");
        // Output past the cap is cut, not an error.
        let out = ex("{{ range 5000 }}0123456789{{ end }}", 0.0);
        assert!(
            out.len() <= CAP && out.ends_with('…') && out.starts_with("0123"),
            "{out}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn go_formats() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(-61_500_000_000), "-1m1.5s");
        assert_eq!(parse_duration("1y2w").unwrap(), (365.0 + 14.0) * 86_400.0);
        assert!(parse_duration("1m1h").is_err());
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        // What Prometheus 2.42's promtool writes for these.
        for (s, t) in [
            ("it's a", "It'S A"),
            ("foo.bar a:b x-y foo/bar a@b", "Foo.Bar A:B X-Y Foo/Bar A@B"),
            ("a_b c a1b 1ab", "A_b C A1b 1ab"),
            ("it’s été àb", "It’s Été Àb"),
            ("aB.cD o'neil", "AB.CD O'Neil"),
            ("ǆa ßa ﬁx", "ǅa ßa ﬁx"),
        ] {
            assert_eq!(title(s), t, "{s}");
        }
        assert_eq!(simple_case("straße İx ǅ ﬁ Σσς", true), "STRAßE İX Ǆ ﬁ ΣΣΣ");
        assert_eq!(simple_case("İx ǅ ﬁ ΑΣ", false), "ix ǆ ﬁ ασ");
    }

    /// The real `promtool test rules` (Prometheus's own template engine) must expect, for
    /// alerts with templated labels and annotations, exactly what this module expands: the
    /// expectations are ours, and promtool passes only if Prometheus produces the same strings.
    /// Without promtool the test is skipped, except under CI where that is a failure.
    #[test]
    fn promtool_expands_templates_as_we_do() {
        let promtool = std::process::Command::new("promtool")
            .arg("--version")
            .output();
        if promtool.is_err() {
            assert!(
                std::env::var("CI").is_err(),
                "promtool is missing under CI (scripts/setup-test-deps installs it)"
            );
            eprintln!("promtool not installed; templates not compared with Prometheus");
            return;
        }
        let cases: &[(&str, f64)] = &[
            (
                "{{ $labels.instance }} of {{ .Labels.job }} is {{ $value }}",
                3.0,
            ),
            ("{{ $value }} {{ .Value }}", 1e6),
            ("{{ $value }}", 1.5e-5),
            ("{{ $value }}", f64::NAN),
            ("{{ humanize $value }}", 1_234_567.0),
            ("{{ humanize $value }}", 0.012),
            ("{{ humanize1024 $value }}", 1_234_567.0),
            ("{{ humanizeDuration $value }}", 90_061.0),
            ("{{ humanizeDuration $value }}", 3.5),
            ("{{ humanizeDuration $value }}", 0.12345),
            ("{{ humanizePercentage $value }}", 0.1234),
            ("{{ humanizeTimestamp $value }}", 1_435_065_584.128),
            ("{{ humanize $value }}", f64::INFINITY),
            (
                r#"{{ printf "%.2f" $value }} {{ printf "%v|%5.1f|%d" $value $value 7 }}"#,
                3.14659,
            ),
            (r#"{{ printf "%v %g %.3e" $value $value $value }}"#, 2.5e7),
            ("{{ print $value 2 \"a\" 3 }}", 1.5),
            (
                "{{ if gt $value 80.0 }}high{{ else if gt $value 50.0 }}mid{{ else }}low{{ end }}",
                60.0,
            ),
            (
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
                0.0,
            ),
            ("[{{ $labels.nope }}] {{ $labels }}", 0.0),
            (
                r#"{{ index $labels "job" | toUpper }} {{ "aa bb-cc it's" | title }}"#,
                0.0,
            ),
            (
                r#"{{ reReplaceAll "(.*):([0-9]+)" "$2 on ${1}" $labels.instance }}"#,
                0.0,
            ),
            (
                r#"{{ $labels.instance | stripPort }} {{ match "^node" $labels.job }}"#,
                0.0,
            ),
            (
                r#"{{ printf "%.1f" (parseDuration "1h30m") }} {{ graphLink "up == 0" }}"#,
                0.0,
            ),
            (
                r#"{{ define "x" }}{{ .arg0 }}/{{ .arg1 }}{{ end }}{{ template "x" (args $labels.job 2) }}"#,
                0.0,
            ),
            (
                "{{ with $labels.job }}{{ . }}{{ else }}none{{ end }} {{ len $labels }}",
                0.0,
            ),
            (
                r#"{{ printf "%.2f|%v|%6.1f|%e" $value $value $value $value }}"#,
                f64::INFINITY,
            ),
            (r#"{{ printf "%.2f %v" $value $value }}"#, f64::NAN),
            (
                "{{ humanize $value }} {{ humanize1024 $value }} {{ humanizeDuration $value }}",
                -0.000_123,
            ),
            ("{{ humanizeTimestamp $value }} {{ $value | toTime }}", -1.5),
            (
                r#"{{ $labels.instance | stripDomain }} {{ "10.0.0.1:80" | stripDomain }}"#,
                0.0,
            ),
            (
                r#"{{ html "<a href='x'>&</a>" }} {{ js "it's \"q\" <x>" }} {{ urlquery "a b&c/d" }}"#,
                0.0,
            ),
            (
                r#"{{ printf "%q %x %5s|%-5s|" $labels.job $labels.job "ab" "cd" }}"#,
                0.0,
            ),
            // (promtool has no external URL: its `externalURL` fails.)
            ("{{ $externalLabels }}|{{ $externalURL }}", 0.0),
            (
                r#"{{ if and (gt $value 1.0) (lt $value 10.0) }}in{{ end }}{{ if or (eq $labels.job "x") (not true) }}x{{ end }}"#,
                5.0,
            ),
            (
                r#"{{ slice "abcdef" 1 3 }} {{ le 2 3 }} {{ eq "a" "b" "a" }}"#,
                0.0,
            ),
            (
                r#"{{ $x := 0 }}{{ range $k, $v := $labels }}{{ if eq $k "job" }}{{ break }}{{ end }}{{ $x = $k }}{{ end }}{{ $x }}"#,
                0.0,
            ),
            ("{{- /* comment */ -}} a {{- \" b \" -}} c", 0.0),
            (
                r#"{{ printf "%d%%" 5 }} {{ printf "%s" 1.5 }} {{ printf "%d" }}"#,
                0.0,
            ),
            (
                "{{ 0x1F }} {{ 1e3 }} {{ 'a' }} {{ -2.50 }} {{ 1_000 }}",
                0.0,
            ),
            // `query`, on this test's own series (its results given below as the runner would).
            (
                r#"{{ with query "m{case=\"0\"}" }}{{ . | first | value | humanize }} {{ . | first | label "instance" }}{{ end }}"#,
                0.0,
            ),
            (
                r#"{{ range query "m{case=~\"[01]\"}" | sortByLabel "case" }}{{ .Labels.case }}:{{ .Value }} [{{ .Labels.nope }}]|{{ end }}"#,
                0.0,
            ),
            (
                r#"{{ len (query "nope") }} [{{ query "m{case=\"0\"}" | first | strvalue }}]"#,
                0.0,
            ),
            (
                r#"{{ range $i, $s := query "m{case=\"0\"}" }}{{ $i }} {{ $s.Labels.job }} {{ $s.Value }} {{ $s.Labels }}{{ end }}"#,
                0.0,
            ),
        ];
        let series_labels = labels();
        // What the queries above return: case 0 (3) and 1 (1e6) with their labels.
        let sample = |i: usize| {
            let mut l = series_labels.clone();
            l.push(("__name__".into(), "m".into()));
            l.push(("case".into(), i.to_string()));
            l.sort();
            (l, cases[i].1)
        };
        let queries: Queries = [
            (r#"m{case="0"}"#.to_string(), Ok(vec![sample(0)])),
            (
                r#"m{case=~"[01]"}"#.to_string(),
                Ok(vec![sample(1), sample(0)]),
            ),
            ("nope".to_string(), Ok(Vec::new())),
        ]
        .into_iter()
        .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut rules = Vec::new();
        let mut series = Vec::new();
        let mut tests = Vec::new();
        for (i, (tpl, v)) in cases.iter().enumerate() {
            let case = i.to_string();
            let alert = format!("T{i}");
            let sev = r#"{{ if gt $value 2.0 }}page{{ else }}ticket{{ end }}"#;
            rules.push(serde_json::json!({
                "alert": alert,
                "expr": format!("m{{case=\"{case}\"}}"),
                "labels": {"sev": sev},
                "annotations": {"t": tpl},
            }));
            let mut l = series_labels.clone();
            l.push(("case".into(), case.clone()));
            series.push(serde_json::json!({
                "series": format!(
                    "m{{{}}}",
                    l.iter()
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                "values": lookout_promql::format_value(*v),
            }));
            // What the templates see: the series' labels, its name included.
            let mut seen = l.clone();
            seen.push(("__name__".into(), "m".into()));
            seen.sort();
            let mut e = Expander::new(&alert, "", 0, Some(&queries));
            let mut exp_labels: BTreeMap<String, String> = l.into_iter().collect();
            exp_labels.insert("sev".into(), e.expand(sev, &seen, *v, CAP));
            tests.push(serde_json::json!({
                "eval_time": "0m",
                "alertname": alert,
                "exp_alerts": [{
                    "exp_labels": exp_labels,
                    "exp_annotations": {"t": e.expand(tpl, &seen, *v, CAP)},
                }],
            }));
        }
        let rules_file = serde_json::json!({"groups": [{"name": "t", "rules": rules}]});
        let test_file = serde_json::json!({
            "rule_files": ["rules.json"],
            "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}],
        });
        std::fs::write(dir.path().join("rules.json"), rules_file.to_string()).unwrap();
        std::fs::write(dir.path().join("test.json"), test_file.to_string()).unwrap();
        let out = std::process::Command::new("promtool")
            .args(["test", "rules", "test.json"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool expects other expansions:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
