//! Binary operators: arithmetic, comparisons (filtering, or 0/1 with `bool`), and the set
//! operators and/or/unless, between scalars and vectors, with Prometheus's vector matching
//! (`on`/`ignoring`, `group_left`/`group_right`) and its errors for ambiguous matches.
//! Matching happens step by step, as a series may be present at some steps only.

use std::collections::{HashMap, HashSet};

use crate::error::Error;
use crate::eval::{drop_name, present, Ctx, ABSENT, RS, V};
use crate::functions::merge_same_labels;
use crate::ir::{Bin, BinOp, Card};
use crate::value::Labels;

/// `(value, keep)`: comparisons keep the left value when true, as Prometheus's `vectorElemBinop`.
fn elem(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Mod => (l % r, true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
    }
}

/// Arithmetic drops the metric name; comparisons and set operators keep it.
fn drops_name(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow | BinOp::Mod | BinOp::Atan2
    )
}

/// The matching signature of a label set: the `on` labels, or all but the `ignoring` ones and
/// the metric name. Names and values are separated by the byte 0xff, which UTF-8 text never
/// contains (the character `ÿ` is two other bytes), so no two label sets share a signature.
fn signature(labels: &Labels, on: bool, names: &[String]) -> Vec<u8> {
    let mut sig = Vec::new();
    for (n, v) in labels {
        let listed = names.iter().any(|x| x == n);
        let used = if on {
            listed
        } else {
            !listed && n != "__name__"
        };
        if used && !v.is_empty() {
            sig.extend_from_slice(n.as_bytes());
            sig.push(0xff);
            sig.extend_from_slice(v.as_bytes());
            sig.push(0xff);
        }
    }
    sig
}

impl Ctx<'_> {
    pub(crate) fn binary(&self, bin: &Bin) -> Result<V, Error> {
        let lhs = self.eval(&bin.lhs)?;
        let rhs = self.eval(&bin.rhs)?;
        let op = bin.op;
        Ok(match (lhs, rhs) {
            (V::Scalar(a), V::Scalar(b)) => V::Scalar(
                a.iter()
                    .zip(&b)
                    .map(|(&l, &r)| {
                        let (v, keep) = elem(op, l, r);
                        if op.is_comparison() {
                            f64::from(u8::from(keep))
                        } else {
                            v
                        }
                    })
                    .collect(),
            ),
            (V::Vector(v), V::Scalar(s)) => V::Vector(self.vector_scalar(bin, v, &s, false)?),
            (V::Scalar(s), V::Vector(v)) => V::Vector(self.vector_scalar(bin, v, &s, true)?),
            (V::Vector(l), V::Vector(r)) if op.is_set() => V::Vector(self.set_op(bin, l, r)?),
            (V::Vector(l), V::Vector(r)) => V::Vector(self.vector_vector(bin, l, r)?),
            _ => {
                return Err(Error::bad_data(
                    "binary operators need scalars or instant vectors",
                ))
            }
        })
    }

    fn vector_scalar(
        &self,
        bin: &Bin,
        mut v: Vec<RS>,
        s: &[f64],
        swap: bool,
    ) -> Result<Vec<RS>, Error> {
        let op = bin.op;
        if op.is_set() {
            return Err(Error::bad_data(
                "set operators need instant vectors on both sides",
            ));
        }
        for series in &mut v {
            if drops_name(op) || bin.return_bool {
                series.labels = drop_name(&series.labels);
            }
            for (k, x) in series.vals.iter_mut().enumerate() {
                if !present(*x) {
                    continue;
                }
                let (l, r) = if swap { (s[k], *x) } else { (*x, s[k]) };
                let (mut value, mut keep) = elem(op, l, r);
                // A comparison keeps the vector's value, whichever side it is on.
                if op.is_comparison() && swap {
                    value = r;
                }
                if bin.return_bool {
                    value = f64::from(u8::from(keep));
                    keep = true;
                }
                *x = if keep { value } else { ABSENT };
            }
        }
        merge_same_labels(v)
    }

    fn set_op(&self, bin: &Bin, l: Vec<RS>, r: Vec<RS>) -> Result<Vec<RS>, Error> {
        let lsig: Vec<Vec<u8>> = l
            .iter()
            .map(|s| signature(&s.labels, bin.on, &bin.labels))
            .collect();
        let rsig: Vec<Vec<u8>> = r
            .iter()
            .map(|s| signature(&s.labels, bin.on, &bin.labels))
            .collect();
        let mut out_l = l;
        let mut out_r = r;
        for k in 0..self.n() {
            self.check_time()?;
            match bin.op {
                BinOp::And | BinOp::Unless => {
                    let rset: HashSet<&[u8]> = out_r
                        .iter()
                        .zip(&rsig)
                        .filter(|(s, _)| present(s.vals[k]))
                        .map(|(_, g)| g.as_slice())
                        .collect();
                    let want = bin.op == BinOp::And;
                    for (s, g) in out_l.iter_mut().zip(&lsig) {
                        if present(s.vals[k]) && rset.contains(g.as_slice()) != want {
                            s.vals[k] = ABSENT;
                        }
                    }
                }
                _ => {
                    let lset: HashSet<&[u8]> = out_l
                        .iter()
                        .zip(&lsig)
                        .filter(|(s, _)| present(s.vals[k]))
                        .map(|(_, g)| g.as_slice())
                        .collect();
                    for (s, g) in out_r.iter_mut().zip(&rsig) {
                        if present(s.vals[k]) && lset.contains(g.as_slice()) {
                            s.vals[k] = ABSENT;
                        }
                    }
                }
            }
        }
        if bin.op == BinOp::Or {
            out_l.extend(out_r);
        }
        out_l.retain(|s| s.vals.iter().any(|v| present(*v)));
        merge_same_labels(out_l)
    }

    fn vector_vector(&self, bin: &Bin, l: Vec<RS>, r: Vec<RS>) -> Result<Vec<RS>, Error> {
        // The "many" side is walked, the "one" side indexed; group_right swaps them.
        let (many, one) = if bin.card == Card::OneToMany {
            (&r, &l)
        } else {
            (&l, &r)
        };
        let msig: Vec<Vec<u8>> = many
            .iter()
            .map(|s| signature(&s.labels, bin.on, &bin.labels))
            .collect();
        let osig: Vec<Vec<u8>> = one
            .iter()
            .map(|s| signature(&s.labels, bin.on, &bin.labels))
            .collect();
        let mut out: Vec<RS> = Vec::new();
        let mut out_index: HashMap<Labels, usize> = HashMap::new();
        let mut pair_out: HashMap<(usize, usize), usize> = HashMap::new();
        for k in 0..self.n() {
            self.check_time()?;
            let mut one_at: HashMap<&[u8], usize> = HashMap::new();
            for (j, s) in one.iter().enumerate() {
                if !present(s.vals[k]) {
                    continue;
                }
                if let Some(&prev) = one_at.get(osig[j].as_slice()) {
                    let side = if bin.card == Card::OneToMany {
                        "left"
                    } else {
                        "right"
                    };
                    return Err(Error::execution(format!(
                        "found duplicate series for the match group on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        show(&s.labels),
                        show(&one[prev].labels)
                    )));
                }
                one_at.insert(osig[j].as_slice(), j);
            }
            let mut matched: HashMap<&[u8], HashSet<usize>> = HashMap::new();
            for (i, s) in many.iter().enumerate() {
                if !present(s.vals[k]) {
                    continue;
                }
                let Some(&j) = one_at.get(msig[i].as_slice()) else {
                    continue;
                };
                let (mut vl, mut vr) = (s.vals[k], one[j].vals[k]);
                if bin.card == Card::OneToMany {
                    std::mem::swap(&mut vl, &mut vr);
                }
                let (mut value, keep) = elem(bin.op, vl, vr);
                if bin.return_bool {
                    value = f64::from(u8::from(keep));
                } else if !keep {
                    continue;
                }
                let o = match pair_out.get(&(i, j)) {
                    Some(&o) => o,
                    None => {
                        let mut labels = self.result_labels(bin, &s.labels, &one[j].labels);
                        if bin.return_bool {
                            labels = drop_name(&labels);
                        }
                        let o = match out_index.get(&labels) {
                            Some(&o) => o,
                            None => {
                                self.charge(self.n())?;
                                out_index.insert(labels.clone(), out.len());
                                out.push(RS {
                                    labels,
                                    vals: vec![ABSENT; self.n()],
                                });
                                out.len() - 1
                            }
                        };
                        pair_out.insert((i, j), o);
                        o
                    }
                };
                let seen = matched.entry(msig[i].as_slice()).or_default();
                if bin.card == Card::OneToOne {
                    if !seen.is_empty() {
                        return Err(Error::execution(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                        ));
                    }
                } else if seen.contains(&o) {
                    return Err(Error::execution(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    ));
                }
                seen.insert(o);
                out[o].vals[k] = value;
            }
        }
        Ok(out)
    }

    /// Prometheus's `resultMetric`: the "many" side's labels, without the name for arithmetic,
    /// narrowed to the matching labels for one-to-one, plus the `group_x` labels of the "one" side.
    fn result_labels(&self, bin: &Bin, many: &Labels, one: &Labels) -> Labels {
        let mut labels: Labels = many
            .iter()
            .filter(|(n, _)| !(drops_name(bin.op) && n == "__name__"))
            .filter(|(n, _)| {
                bin.card != Card::OneToOne || bin.labels.iter().any(|x| x == n) == bin.on
            })
            .filter(|(n, _)| !bin.include.iter().any(|x| x == n))
            .cloned()
            .collect();
        for name in &bin.include {
            let v = crate::matcher::label_value(one, name);
            if !v.is_empty() {
                labels.push((name.clone(), v.to_string()));
            }
        }
        labels.sort();
        labels
    }
}

fn show(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}
