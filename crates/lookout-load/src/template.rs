//! `{{…}}` templates in URLs, headers and bodies: compiled once before the run (unknown names are
//! errors then, not at request time), rendered per request into a reused buffer.
//!
//! Names: `vu`, `iteration` (unique in the scenario), `vu_iteration`, `scenario`, `env.NAME`,
//! `data.COLUMN` (the iteration's row of the scenario's CSV file), `random.int(A,B)`,
//! `random.uuid`, `random.string(N)`, `timestamp_ms`, and any value an earlier step extracted.
//! Hand-written: a general template engine would cost more per request than the request.

use std::collections::HashMap;
use std::fmt::Write as _;

use rand::Rng;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Vu,
    Iteration,
    VuIteration,
    Data(usize),
    RandInt(i64, i64),
    Uuid,
    RandString(usize),
    TimestampMs,
    Var(usize),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template may refer to, known before the run.
pub struct Scope<'a> {
    /// The scenario's name.
    pub scenario: &'a str,
    /// Scenario `env` over the process environment.
    pub env: &'a HashMap<String, String>,
    /// Columns of the scenario's data file, if it has one.
    pub columns: Option<&'a [String]>,
    /// Values extracted by earlier steps, in slot order.
    pub vars: &'a [String],
}

/// What a template reads while the run goes.
pub struct Values<'a, R: Rng> {
    pub vu: u64,
    pub iteration: u64,
    pub vu_iteration: u64,
    pub row: Option<&'a [String]>,
    pub vars: &'a [String],
    pub rng: &'a mut R,
}

impl Template {
    /// Compiles `text`, resolving what is fixed for the run (scenario, env) right away.
    pub fn compile(text: &str, scope: &Scope<'_>) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut lit = String::new();
        while let Some(open) = rest.find("{{") {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("`{text}`: `{{{{` without a closing `}}}}`"))?;
            let name = after[..close].trim();
            match resolve(name, scope)? {
                Part::Lit(s) => lit.push_str(&s),
                part => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                }
            }
            rest = &after[close + 2..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// The text, when nothing in it changes between requests.
    pub fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// The literal text before the first changing part.
    pub fn fixed_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(s)) => s,
            _ => "",
        }
    }

    /// Whether the template reads the data file.
    pub fn uses_data(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Data(_)))
    }

    /// Appends the rendered text to `out`.
    pub fn render<R: Rng>(&self, out: &mut String, v: &mut Values<'_, R>) {
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Vu => {
                    let _ = write!(out, "{}", v.vu);
                }
                Part::Iteration => {
                    let _ = write!(out, "{}", v.iteration);
                }
                Part::VuIteration => {
                    let _ = write!(out, "{}", v.vu_iteration);
                }
                Part::Data(col) => {
                    if let Some(cell) = v.row.and_then(|r| r.get(*col)) {
                        out.push_str(cell);
                    }
                }
                Part::RandInt(lo, hi) => {
                    let _ = write!(out, "{}", v.rng.gen_range(*lo..=*hi));
                }
                Part::Uuid => {
                    let b: [u8; 16] = v.rng.gen();
                    let _ = write!(
                        out,
                        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        u16::from_be_bytes([b[4], b[5]]),
                        u16::from_be_bytes([b[6], b[7]]) & 0x0fff,
                        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
                        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
                    );
                }
                Part::RandString(n) => {
                    const ALNUM: &[u8] =
                        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                    for _ in 0..*n {
                        out.push(ALNUM[v.rng.gen_range(0..ALNUM.len())] as char);
                    }
                }
                Part::TimestampMs => {
                    let ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    let _ = write!(out, "{ms}");
                }
                Part::Var(slot) => {
                    if let Some(val) = v.vars.get(*slot) {
                        out.push_str(val);
                    }
                }
            }
        }
    }
}

fn resolve(name: &str, scope: &Scope<'_>) -> Result<Part, String> {
    Ok(match name {
        "vu" => Part::Vu,
        "iteration" => Part::Iteration,
        "vu_iteration" => Part::VuIteration,
        "scenario" => Part::Lit(scope.scenario.to_string()),
        "timestamp_ms" => Part::TimestampMs,
        "random.uuid" => Part::Uuid,
        n if n.starts_with("env.") => {
            let key = &n[4..];
            match scope.env.get(key) {
                Some(v) => Part::Lit(v.clone()),
                None => {
                    return Err(format!(
                        "`{{{{{n}}}}}`: environment variable `{key}` is not set"
                    ))
                }
            }
        }
        n if n.starts_with("data.") => {
            let col = &n[5..];
            let columns = scope
                .columns
                .ok_or_else(|| format!("`{{{{{n}}}}}`: the scenario has no `data` file"))?;
            let at = columns.iter().position(|c| c == col).ok_or_else(|| {
                format!(
                    "`{{{{{n}}}}}`: the data file has no column `{col}` (it has: {})",
                    columns.join(", ")
                )
            })?;
            Part::Data(at)
        }
        n if n.starts_with("random.int(") && n.ends_with(')') => {
            let args = &n["random.int(".len()..n.len() - 1];
            let (a, b) = args
                .split_once(',')
                .ok_or_else(|| format!("`{{{{{n}}}}}`: write random.int(MIN,MAX)"))?;
            let (a, b): (i64, i64) = (
                a.trim()
                    .parse()
                    .map_err(|_| format!("`{{{{{n}}}}}`: MIN is not an integer"))?,
                b.trim()
                    .parse()
                    .map_err(|_| format!("`{{{{{n}}}}}`: MAX is not an integer"))?,
            );
            if a > b {
                return Err(format!("`{{{{{n}}}}}`: MIN is above MAX"));
            }
            Part::RandInt(a, b)
        }
        n if n.starts_with("random.string(") && n.ends_with(')') => {
            let len: usize = n["random.string(".len()..n.len() - 1]
                .trim()
                .parse()
                .map_err(|_| format!("`{{{{{n}}}}}`: write random.string(LENGTH)"))?;
            if len > 4096 {
                return Err(format!("`{{{{{n}}}}}`: at most 4096 characters"));
            }
            Part::RandString(len)
        }
        n => match scope.vars.iter().position(|v| v == n) {
            Some(slot) => Part::Var(slot),
            None => {
                let mut known = vec![
                    "vu",
                    "iteration",
                    "vu_iteration",
                    "scenario",
                    "timestamp_ms",
                ];
                known.extend(scope.vars.iter().map(String::as_str));
                return Err(format!(
                    "`{{{{{n}}}}}`: unknown name (known here: {}, env.NAME, data.COLUMN, random.int(A,B), random.uuid, random.string(N))",
                    known.join(", ")
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(
        env: &'a HashMap<String, String>,
        cols: &'a [String],
        vars: &'a [String],
    ) -> Scope<'a> {
        Scope {
            scenario: "api",
            env,
            columns: Some(cols),
            vars,
        }
    }

    #[test]
    fn templates_render_every_kind_of_name() {
        let env = HashMap::from([("HOST".to_string(), "example.test".to_string())]);
        let cols = vec!["user".to_string(), "pass".to_string()];
        let vars = vec!["token".to_string()];
        let t = Template::compile(
            "http://{{env.HOST}}/{{scenario}}/{{vu}}/{{iteration}}/{{ vu_iteration }}?u={{data.pass}}&t={{token}}&n={{random.int(5,5)}}",
            &scope(&env, &cols, &vars),
        )
        .unwrap();
        assert_eq!(t.fixed_prefix(), "http://example.test/api/");
        assert!(t.fixed().is_none() && t.uses_data());
        let mut rng = rand::thread_rng();
        let row = vec!["ann".to_string(), "s3cret".to_string()];
        let values = vec!["abc".to_string()];
        let mut out = String::new();
        t.render(
            &mut out,
            &mut Values {
                vu: 3,
                iteration: 17,
                vu_iteration: 4,
                row: Some(&row),
                vars: &values,
                rng: &mut rng,
            },
        );
        assert_eq!(out, "http://example.test/api/3/17/4?u=s3cret&t=abc&n=5");

        let u = Template::compile(
            "{{random.uuid}}-{{random.string(6)}}",
            &scope(&env, &cols, &vars),
        )
        .unwrap();
        let mut out = String::new();
        u.render(
            &mut out,
            &mut Values {
                vu: 1,
                iteration: 0,
                vu_iteration: 0,
                row: None,
                vars: &[],
                rng: &mut rng,
            },
        );
        let (uuid, s) = out.rsplit_once('-').unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn unknown_names_are_errors_before_the_run() {
        let env = HashMap::new();
        let cols = vec!["user".to_string()];
        let s = scope(&env, &cols, &[]);
        assert!(Template::compile("{{tokn}}", &s)
            .unwrap_err()
            .contains("unknown name"));
        assert!(Template::compile("{{env.NOPE}}", &s)
            .unwrap_err()
            .contains("not set"));
        assert!(Template::compile("{{data.pass}}", &s)
            .unwrap_err()
            .contains("no column"));
        assert!(Template::compile("{{random.int(9,1)}}", &s)
            .unwrap_err()
            .contains("above"));
        assert!(Template::compile("{{vu", &s)
            .unwrap_err()
            .contains("closing"));
        assert_eq!(
            Template::compile("plain", &s).unwrap().fixed(),
            Some("plain")
        );
    }
}
