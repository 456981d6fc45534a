//! Recursive-descent parser: tokens ([`crate::lexer`]) into a [`Query`]. Clauses after `FROM`
//! may come in any order, each once, as New Relic accepts them; keywords are case-insensitive.

use crate::ast::{
    Arg, BinOp, Expr, Facet, Interval, Limit, Query, SelectItem, Time, Timeseries, Unit,
};
use crate::lexer::{tokens, Tok, Token};

/// Why a query does not parse, and where (line and column from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// Line of the offending token.
    pub line: usize,
    /// Column of the offending token.
    pub column: usize,
    /// What was wrong, usually "expected …, found …".
    pub message: String,
}

impl ParseError {
    /// The error with the query's line and a caret under the column, as the console shows it.
    pub fn render(&self, src: &str) -> String {
        let text = src.lines().nth(self.line.saturating_sub(1)).unwrap_or("");
        let pad: String = text
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{self}\n{text}\n{pad}^")
    }
}

/// Most `FACET` attributes.
pub const MAX_FACETS: usize = 5;

/// Largest `LIMIT`.
pub const MAX_LIMIT: u64 = 5_000;

const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "FACET",
    "CASES",
    "LIMIT",
    "OFFSET",
    "SINCE",
    "UNTIL",
    "COMPARE",
    "WITH",
    "TIMESERIES",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "RLIKE",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "ORDER",
    "BY",
    "AGO",
    "EXTRAPOLATE",
];

/// Whether `word` is a keyword that cannot name an attribute unquoted.
pub(crate) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

/// Weekday names, Monday first.
pub(crate) const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Parses one query.
pub fn parse(src: &str) -> Result<Query, ParseError> {
    let mut p = Parser {
        toks: tokens(src)?,
        at: 0,
    };
    let q = p.query()?;
    match p.peek() {
        Tok::End => Ok(q),
        _ => Err(p.expected(
            "WHERE, FACET, LIMIT, OFFSET, ORDER BY, SINCE, UNTIL, COMPARE WITH, TIMESERIES, WITH TIMEZONE or the end of the query",
        )),
    }
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Quoted(w) => format!("`{w}`"),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n) => format!("{n}"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::End => "the end of the query".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.at + n).min(self.toks.len() - 1)].tok
    }

    fn bump(&mut self) -> Tok {
        let t = self.toks[self.at].tok.clone();
        if self.at < self.toks.len() - 1 {
            self.at += 1;
        }
        t
    }

    fn error(&self, message: String) -> ParseError {
        let t = &self.toks[self.at];
        ParseError {
            line: t.line,
            column: t.column,
            message,
        }
    }

    fn expected(&self, what: &str) -> ParseError {
        self.error(format!("expected {what}, found {}", describe(self.peek())))
    }

    /// Whether the next token is keyword `kw` (any case).
    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }

    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ParseError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.expected(kw))
        }
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Tok::Sym(x) if *x == s) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), ParseError> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{s}`")))
        }
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        let mut q = Query::default();
        if self.eat_kw("FROM") {
            q.from = self.event_types()?;
            self.expect_kw("SELECT")?;
            q.select = self.select_list()?;
        } else {
            self.expect_kw("SELECT")?;
            q.select = self.select_list()?;
            self.expect_kw("FROM")?;
            q.from = self.event_types()?;
        }
        loop {
            let at = self.at;
            if self.eat_kw("WHERE") {
                self.once(&q.filter, "WHERE", at)?;
                q.filter = Some(self.expr()?);
            } else if self.eat_kw("FACET") {
                self.once(&q.facet, "FACET", at)?;
                q.facet = Some(self.facet()?);
            } else if self.eat_kw("LIMIT") {
                self.once(&q.limit, "LIMIT", at)?;
                q.limit = Some(if self.eat_kw("MAX") {
                    Limit::Max
                } else {
                    let n = self.count("a number or MAX")?;
                    if n > MAX_LIMIT {
                        return Err(self.error_before(format!(
                            "LIMIT is at most {MAX_LIMIT} (LIMIT MAX asks for that)"
                        )));
                    }
                    Limit::Count(n)
                });
            } else if self.eat_kw("OFFSET") {
                self.once(&q.offset, "OFFSET", at)?;
                q.offset = Some(self.count("a number")?);
            } else if self.is_kw("ORDER") && self.is_kw_at(1, "BY") {
                self.bump();
                self.bump();
                self.once(&q.order_by, "ORDER BY", at)?;
                let e = self.expr()?;
                let desc = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                q.order_by = Some((e, desc));
            } else if self.eat_kw("SINCE") {
                self.once(&q.since, "SINCE", at)?;
                q.since = Some(self.time()?);
            } else if self.eat_kw("UNTIL") {
                self.once(&q.until, "UNTIL", at)?;
                q.until = Some(self.time()?);
            } else if self.eat_kw("COMPARE") {
                self.expect_kw("WITH")?;
                self.once(&q.compare_with, "COMPARE WITH", at)?;
                let i = self.interval()?;
                self.expect_kw("AGO")?;
                q.compare_with = Some(i);
            } else if self.eat_kw("TIMESERIES") {
                self.once(&q.timeseries, "TIMESERIES", at)?;
                q.timeseries = Some(if self.eat_kw("AUTO") {
                    Timeseries::Auto
                } else if self.eat_kw("MAX") {
                    Timeseries::Max
                } else if matches!(self.peek(), Tok::Num(_)) {
                    Timeseries::Every(self.interval()?)
                } else {
                    Timeseries::Auto
                });
            } else if self.is_kw("WITH") && self.is_kw_at(1, "TIMEZONE") {
                self.bump();
                self.bump();
                self.once(&q.timezone, "WITH TIMEZONE", at)?;
                q.timezone = Some(self.string("a time zone such as 'Europe/Paris'")?);
            } else if self.is_kw("EXTRAPOLATE") {
                return Err(self.error(
                    "EXTRAPOLATE is not needed: Lookout keeps every span and event, unsampled"
                        .into(),
                ));
            } else {
                break;
            }
        }
        Ok(q)
    }

    /// Fails with "NAME is given twice" at token `at` when the clause's slot is already filled.
    fn once<T>(&self, slot: &Option<T>, name: &str, at: usize) -> Result<(), ParseError> {
        match slot {
            None => Ok(()),
            Some(_) => {
                let t = &self.toks[at];
                Err(ParseError {
                    line: t.line,
                    column: t.column,
                    message: format!("{name} is given twice"),
                })
            }
        }
    }

    /// An error at the token just read.
    fn error_before(&self, message: String) -> ParseError {
        let t = &self.toks[self.at.saturating_sub(1)];
        ParseError {
            line: t.line,
            column: t.column,
            message,
        }
    }

    /// A non-negative whole number.
    fn count(&mut self, what: &str) -> Result<u64, ParseError> {
        match self.peek() {
            Tok::Num(n) if *n >= 0.0 && n.fract() == 0.0 && *n <= u64::MAX as f64 => {
                let n = *n as u64;
                self.bump();
                Ok(n)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn event_types(&mut self) -> Result<Vec<String>, ParseError> {
        let mut out = vec![self.name("an event type such as Transaction")?];
        while self.eat_sym(",") {
            out.push(self.name("an event type")?);
        }
        Ok(out)
    }

    /// A name: a non-reserved word, or a backquoted name.
    fn name(&mut self, what: &str) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Word(w) if !is_reserved(&w) => {
                self.bump();
                Ok(w)
            }
            Tok::Quoted(w) => {
                self.bump();
                Ok(w)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn select_list(&mut self) -> Result<Vec<SelectItem>, ParseError> {
        let mut out = vec![self.item()?];
        while self.eat_sym(",") {
            out.push(self.item()?);
        }
        Ok(out)
    }

    fn item(&mut self) -> Result<SelectItem, ParseError> {
        let expr = if self.eat_sym("*") {
            Expr::Star
        } else {
            self.expr()?
        };
        let alias = self.alias()?;
        Ok(SelectItem { expr, alias })
    }

    fn alias(&mut self) -> Result<Option<String>, ParseError> {
        if !self.eat_kw("AS") {
            return Ok(None);
        }
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(Some(s))
            }
            _ => self.name("a label such as 'Errors'").map(Some),
        }
    }

    fn facet(&mut self) -> Result<Facet, ParseError> {
        if self.eat_kw("CASES") {
            self.expect_sym("(")?;
            let mut cases = Vec::new();
            loop {
                self.expect_kw("WHERE")?;
                let c = self.expr()?;
                let label = self.alias()?;
                cases.push((c, label));
                if !self.eat_sym(",") {
                    break;
                }
            }
            self.expect_sym(")")?;
            let otherwise = if self.eat_kw("OR") {
                Some(self.expr()?)
            } else {
                None
            };
            return Ok(Facet::Cases { cases, otherwise });
        }
        let mut items = vec![self.facet_item()?];
        while self.eat_sym(",") {
            if items.len() == MAX_FACETS {
                return Err(self.error(format!("FACET takes at most {MAX_FACETS} attributes")));
            }
            items.push(self.facet_item()?);
        }
        Ok(Facet::Items(items))
    }

    fn facet_item(&mut self) -> Result<SelectItem, ParseError> {
        let expr = self.additive()?;
        let alias = self.alias()?;
        Ok(SelectItem { expr, alias })
    }

    fn time(&mut self) -> Result<Time, ParseError> {
        match self.peek().clone() {
            Tok::Num(n) => {
                if matches!(self.peek_at(1), Tok::Word(w) if Unit::from_word(w).is_some()) {
                    let i = self.interval()?;
                    self.expect_kw("AGO")?;
                    return Ok(Time::Ago(i));
                }
                if matches!(self.peek_at(1), Tok::Word(w) if !is_reserved(w)) {
                    // `3 parsecs ago`: a duration with a unit we do not know.
                    self.bump();
                    return Err(self.expected(
                        "a unit: second, minute, hour, day, week, month, quarter or year",
                    ));
                }
                if n.fract() != 0.0 || !(0.0..=9.0e15).contains(&n) {
                    return Err(self.expected("epoch milliseconds or `n units AGO`"));
                }
                self.bump();
                Ok(Time::Epoch(n as i64))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Time::DateTime(s))
            }
            Tok::Word(w) => {
                let lw = w.to_ascii_lowercase();
                let name = if lw == "now" {
                    self.bump();
                    return Ok(Time::Now);
                } else if lw == "today" || lw == "yesterday" || WEEKDAYS.contains(&lw.as_str()) {
                    self.bump();
                    lw
                } else if lw == "this" || lw == "last" {
                    self.bump();
                    let unit = match self.peek() {
                        Tok::Word(u) => {
                            Unit::from_word(u).filter(|u| !matches!(u, Unit::Second | Unit::Minute))
                        }
                        _ => None,
                    };
                    let Some(unit) = unit else {
                        return Err(self
                            .expected("hour, day, week, month, quarter or year after THIS/LAST"));
                    };
                    self.bump();
                    format!("{lw} {}", format!("{unit:?}").to_ascii_lowercase())
                } else {
                    return Err(self.expected(
                        "a time: `n units AGO`, NOW, TODAY, YESTERDAY, a weekday, THIS or LAST week…, epoch milliseconds or a quoted date",
                    ));
                };
                let at = if self.eat_kw("AT") {
                    Some(self.string("a time of day such as '09:30'")?)
                } else {
                    None
                };
                Ok(Time::Calendar { name, at })
            }
            _ => Err(self.expected(
                "a time: `n units AGO`, NOW, TODAY, YESTERDAY, epoch milliseconds or a quoted date",
            )),
        }
    }

    fn interval(&mut self) -> Result<Interval, ParseError> {
        let Tok::Num(n) = self.peek().clone() else {
            return Err(self.expected("a duration such as `5 minutes`"));
        };
        if n <= 0.0 {
            return Err(self.expected("a positive duration"));
        }
        self.bump();
        let unit = match self.peek() {
            Tok::Word(w) => Unit::from_word(w),
            _ => None,
        };
        let Some(unit) = unit else {
            return Err(
                self.expected("a unit: second, minute, hour, day, week, month, quarter or year")
            );
        };
        self.bump();
        Ok(Interval { n, unit })
    }

    /// An expression, loosest first: OR, AND, NOT, comparisons, + -, * /, unary minus.
    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.eat_kw("OR") {
            let right = self.and()?;
            left = bin(BinOp::Or, left, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.eat_kw("AND") {
            let right = self.not()?;
            left = bin(BinOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_kw("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.additive()?;
        let op = match self.peek() {
            Tok::Sym("=") => Some(BinOp::Eq),
            Tok::Sym("!=") | Tok::Sym("<>") => Some(BinOp::Ne),
            Tok::Sym("<") => Some(BinOp::Lt),
            Tok::Sym("<=") => Some(BinOp::Le),
            Tok::Sym(">") => Some(BinOp::Gt),
            Tok::Sym(">=") => Some(BinOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.bump();
            let right = self.additive()?;
            return Ok(bin(op, left, right));
        }
        let negated = self.is_kw("NOT")
            && (self.is_kw_at(1, "IN") || self.is_kw_at(1, "LIKE") || self.is_kw_at(1, "RLIKE"));
        if negated {
            self.bump();
        }
        if self.eat_kw("IN") {
            self.expect_sym("(")?;
            let mut list = vec![self.additive()?];
            while self.eat_sym(",") {
                list.push(self.additive()?);
            }
            self.expect_sym(")")?;
            return Ok(Expr::In {
                expr: Box::new(left),
                list,
                negated,
            });
        }
        let regex = self.is_kw("RLIKE");
        if self.eat_kw("LIKE") || self.eat_kw("RLIKE") {
            let pattern = self.string("a quoted pattern such as '%timeout%'")?;
            return Ok(Expr::Like {
                expr: Box::new(left),
                pattern,
                negated,
                regex,
            });
        }
        if self.eat_kw("IS") {
            let negated = self.eat_kw("NOT");
            let expr = Box::new(left);
            return if self.eat_kw("NULL") {
                Ok(Expr::IsNull { expr, negated })
            } else if self.eat_kw("TRUE") {
                Ok(Expr::IsBool {
                    expr,
                    value: true,
                    negated,
                })
            } else if self.eat_kw("FALSE") {
                Ok(Expr::IsBool {
                    expr,
                    value: false,
                    negated,
                })
            } else {
                Err(self.expected("NULL, TRUE or FALSE"))
            };
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        self.left_assoc(
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            Self::multiplicative,
        )
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        self.left_assoc(&[("*", BinOp::Mul), ("/", BinOp::Div)], Self::unary)
    }

    /// `operand (op operand)*` for one precedence level, left-associative.
    fn left_assoc(
        &mut self,
        ops: &[(&str, BinOp)],
        operand: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let mut left = operand(self)?;
        while let Some(&(_, op)) = ops.iter().find(|(sym, _)| self.eat_sym(sym)) {
            let right = operand(self)?;
            left = bin(op, left, right);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_sym("-") {
            // A negative literal is a number, so that printing and parsing it agree.
            if let Tok::Num(n) = self.peek().clone() {
                if !matches!(self.peek_at(1), Tok::Word(w) if Unit::from_word(w).is_some()) {
                    self.bump();
                    return Ok(Expr::Number(-n));
                }
            }
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().clone() {
            Tok::Num(n) => {
                if matches!(self.peek_at(1), Tok::Word(w) if Unit::from_word(w).is_some()) {
                    return Ok(Expr::Interval(self.interval()?));
                }
                self.bump();
                Ok(Expr::Number(n))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Str(s))
            }
            Tok::Sym("(") => {
                self.bump();
                let e = self.expr()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Quoted(w) => {
                self.bump();
                Ok(Expr::Attr(w))
            }
            Tok::Word(w) => {
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") {
                    self.bump();
                    return Ok(Expr::Bool(w.eq_ignore_ascii_case("true")));
                }
                if w.eq_ignore_ascii_case("null") {
                    self.bump();
                    return Ok(Expr::Null);
                }
                if is_reserved(&w) {
                    return Err(self.expected(
                        "an attribute, a value or a function (quote a reserved name with backticks)",
                    ));
                }
                self.bump();
                if self.eat_sym("(") {
                    let args = self.args()?;
                    return Ok(Expr::Call { name: w, args });
                }
                Ok(Expr::Attr(w))
            }
            _ => Err(self.expected("an attribute, a value or a function")),
        }
    }

    /// The name of a `name: value` argument starting here.
    fn named_arg(&self) -> Option<String> {
        match (self.peek(), self.peek_at(1)) {
            (Tok::Word(k), Tok::Sym(":")) if !is_reserved(k) => Some(k.clone()),
            (Tok::Quoted(k), Tok::Sym(":")) => Some(k.clone()),
            _ => None,
        }
    }

    /// A string literal, or an error naming `what`.
    fn string(&mut self, what: &str) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn args(&mut self) -> Result<Vec<Arg>, ParseError> {
        let mut out = Vec::new();
        if self.eat_sym(")") {
            return Ok(out);
        }
        loop {
            let arg = if self.eat_kw("WHERE") {
                Arg::Where(self.expr()?)
            } else if self.eat_sym("*") {
                Arg::Expr(Expr::Star)
            } else if let Some(k) = self.named_arg() {
                self.bump();
                self.bump();
                Arg::Named(k, self.expr()?)
            } else {
                Arg::Expr(self.expr()?)
            };
            out.push(arg);
            if self.eat_sym(")") {
                return Ok(out);
            }
            if !self.eat_sym(",") {
                return Err(self.expected("`,` or `)`"));
            }
        }
    }
}

fn bin(op: BinOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}
