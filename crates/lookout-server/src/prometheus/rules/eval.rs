//! The pure part of rule evaluation: turning a rule's query result into recorded series or
//! alerts, and an alerting rule's state machine (inactive → pending → firing → resolved, with
//! `for` and `keep_firing_for`), written after Prometheus's `rules/alerting.go` so the same data
//! gives the same states at the same evaluation times. No IO: the runner ([`super::runner`])
//! fetches, evaluates and stores.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::template::Expander;

/// A sorted label set.
pub type Labels = Vec<(String, String)>;

/// Most series one rule may produce, whatever its group's `limit` says: each is a stored
/// series (recording) or an alert and perhaps an incident (alerting).
pub const HARD_SERIES_CAP: usize = 10_000;

/// Most alerts one alerting rule may have, whatever its group's `limit` says: each firing alert
/// is an incident and its notifications, all opened in one transaction.
pub const MAX_ALERTS_PER_RULE: usize = 1_000;

/// Longest expansion of one label or annotation template, bytes; longer ones are cut there
/// and end with `…` (a template such as `{{ $labels }}` repeated over a large file would
/// otherwise turn into megabytes per alert).
pub const MAX_EXPANSION_BYTES: usize = 4096;

/// Most bytes of labels and annotations all the alerts of one group may hold: past it a rule
/// fails (as past its `limit`) instead of filling the state, `ALERTS` and incidents.
pub const MAX_GROUP_ALERT_BYTES: usize = 4 << 20;

/// A group's stored state (JSON in `prom_rule_state.state`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupState {
    /// How long the last evaluation took, ms.
    #[serde(default)]
    pub duration_ms: i64,
    /// Each rule's state, matched to the rules by [`RuleState::key`] (an edited rule starts
    /// afresh, as in Prometheus).
    #[serde(default)]
    pub rules: Vec<RuleState>,
}

/// One rule's stored state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RuleState {
    /// What identifies the rule across reloads: its kind, name, expression and labels.
    pub key: String,
    /// `ok`, `err` or `unknown` (never evaluated).
    pub health: String,
    /// The last evaluation's error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Evaluation timestamp of the last evaluation, ms.
    #[serde(default)]
    pub evaluated_at: i64,
    /// How long its last evaluation took, ms.
    #[serde(default)]
    pub duration_ms: i64,
    /// Active alerts (alerting rules).
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// The series the last evaluation recorded (recording rules), to mark those that vanish
    /// stale as Prometheus does.
    #[serde(default)]
    pub series: Vec<Labels>,
}

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Its condition holds, for less than `for`.
    Pending,
    /// Firing.
    Firing,
}

impl AlertState {
    /// As Prometheus's API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One active alert.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    /// Its labels (`alertname` included), sorted.
    pub labels: Labels,
    /// Annotations, expanded.
    pub annotations: Labels,
    /// Pending or firing.
    pub state: AlertState,
    /// Since when its condition holds, ms.
    pub active_at: i64,
    /// When it started firing, ms.
    #[serde(default)]
    pub fired_at: Option<i64>,
    /// Since when it keeps firing without its condition (`keep_firing_for`), ms.
    #[serde(default)]
    pub keep_firing_since: Option<i64>,
    /// The query's value, formatted as Prometheus formats it (NaN and Inf are not JSON).
    pub value: String,
}

impl Alert {
    /// The Alertmanager fingerprint of its labels (FNV-1a over sorted names and values, as
    /// `model.LabelSet.Fingerprint`), `%016x`: the incident's dedup key.
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", fingerprint(&self.labels))
    }
}

/// An alerting rule as the state machine needs it.
#[derive(Debug, Clone)]
pub struct AlertRule<'a> {
    /// `alertname`.
    pub name: &'a str,
    /// `for`, ms.
    pub for_ms: i64,
    /// `keep_firing_for`, ms.
    pub keep_firing_for_ms: i64,
    /// Label templates.
    pub labels: &'a BTreeMap<String, String>,
    /// Annotation templates.
    pub annotations: &'a BTreeMap<String, String>,
    /// The server's public URL, the templates' `$externalURL` (`""` when unknown).
    pub external_url: &'a str,
    /// The results of the queries the templates call (`query`); `None` where none can run.
    pub queries: Option<&'a super::template::Queries>,
}

/// What one evaluation of an alerting rule changed.
#[derive(Debug, Default, PartialEq)]
pub struct Stepped {
    /// The alerts active after it.
    pub active: Vec<Alert>,
    /// Alerts that started firing now (each opens or joins an incident).
    pub fired: Vec<Alert>,
    /// Alerts that stopped firing now (each resolves its incident).
    pub resolved: Vec<Alert>,
    /// `query` expressions the templates called without a result in
    /// [`AlertRule::queries`]: the caller runs them and steps again.
    pub queries: Vec<String>,
}

/// Prometheus's label-set fingerprint (FNV-1a 64 with 0xff separators).
pub fn fingerprint(labels: &[(String, String)]) -> u64 {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    let mut h = OFFSET;
    let mut add = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    };
    for (k, v) in sorted {
        k.bytes().for_each(&mut add);
        add(0xff);
        v.bytes().for_each(&mut add);
        add(0xff);
    }
    h
}

/// A value as Go's `%v` prints a float64 (`strconv.FormatFloat(v, 'g', -1, 64)`): the
/// shortest digits that read back the same, in exponent form (`1e+06`, `2.147483648e+09`,
/// `1e-05`) when the exponent is below -4 or at least 6 (Go's threshold for the shortest
/// precision); NaN and ±Inf spelled as Go spells them.
pub fn template_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the same shortest digits: `2.147483648e9`.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}

/// `template` expanded as Prometheus expands an alert's label or annotation template (see
/// [`super::template`]), for an alert with these labels and value, with no external URL and
/// `now` at 0. At most [`MAX_EXPANSION_BYTES`] long.
pub fn expand(template: &str, labels: &[(String, String)], value: f64) -> String {
    Expander::new("", "", 0, None).expand(template, labels, value, MAX_EXPANSION_BYTES)
}

/// Prometheus's `--rules.alert.for-outage-tolerance` default: a pending alert's `for` is
/// resumed only when the group was evaluated less than this long ago.
pub const FOR_OUTAGE_TOLERANCE_MS: i64 = 3_600_000;

/// After an outage longer than [`FOR_OUTAGE_TOLERANCE_MS`] (nobody evaluated the group between
/// `evaluated_at` and `t`), pending alerts start their `for` again at `t`, as Prometheus does
/// not restore `for` state older than its tolerance: hours-old data would otherwise fire an
/// alert at once. Firing alerts stay firing.
pub fn forget_stale_pending(state: &mut GroupState, evaluated_at: i64, t: i64) {
    if t - evaluated_at <= FOR_OUTAGE_TOLERANCE_MS {
        return;
    }
    for a in state.rules.iter_mut().flat_map(|r| r.alerts.iter_mut()) {
        if a.state == AlertState::Pending {
            a.active_at = t;
        }
    }
}

/// Bytes of an alert's labels and annotations, as counted against [`MAX_GROUP_ALERT_BYTES`].
pub fn alert_bytes(a: &Alert) -> usize {
    labels_bytes(&a.labels) + labels_bytes(&a.annotations)
}

fn labels_bytes(l: &[(String, String)]) -> usize {
    l.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// The series a recording rule writes: each result with its name set to `record` and the
/// rule's labels applied (an empty value removes a label). Refused, as Prometheus refuses it,
/// when two results end up with the same labels, or past `limit` (0: none) or the hard cap.
pub fn record(
    name: &str,
    rule_labels: &BTreeMap<String, String>,
    results: Vec<(Labels, f64)>,
    limit: usize,
) -> Result<Vec<(Labels, f64)>, String> {
    let cap = effective_limit(limit);
    if results.len() > cap {
        return Err(format!(
            "exceeded limit of {cap} with {} series",
            results.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(results.len());
    for (labels, v) in results {
        let mut m: BTreeMap<String, String> = labels.into_iter().collect();
        m.insert("__name__".into(), name.to_string());
        for (k, lv) in rule_labels {
            if lv.is_empty() {
                m.remove(k);
            } else {
                m.insert(k.clone(), lv.clone());
            }
        }
        let l: Labels = m.into_iter().collect();
        if !seen.insert(l.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push((l, v));
    }
    Ok(out)
}

fn effective_limit(limit: usize) -> usize {
    if limit == 0 {
        HARD_SERIES_CAP
    } else {
        limit.min(HARD_SERIES_CAP)
    }
}

/// One evaluation of an alerting rule at `t` given its query's results and its previous active
/// alerts (as Prometheus's `AlertingRule.Eval`). On an error (two results with one label set,
/// or more alerts than the limit) every alert is dropped: those that were firing are resolved,
/// as Alertmanager resolves alerts Prometheus stops sending.
///
/// `budget` is what is left of the group's [`MAX_GROUP_ALERT_BYTES`]: alerts whose labels and
/// annotations would take more fail the rule the same way.
pub fn step(
    rule: &AlertRule<'_>,
    prev: &[Alert],
    results: Vec<(Labels, f64)>,
    t: i64,
    limit: usize,
    budget: usize,
) -> (Stepped, Option<String>) {
    let fail = |msg: String| {
        let resolved = prev
            .iter()
            .filter(|a| a.state == AlertState::Firing)
            .cloned()
            .collect();
        (
            Stepped {
                active: Vec::new(),
                fired: Vec::new(),
                resolved,
                queries: Vec::new(),
            },
            Some(msg),
        )
    };
    // The results as alerts: labels without the metric name, the rule's labels expanded on
    // top, then `alertname`.
    let mut now: HashMap<u64, (Labels, Labels, f64)> = HashMap::new();
    let mut used = 0usize;
    let over = |used: usize| {
        format!(
            "the alerts' labels and annotations take more than {budget} bytes ({used} so far; \
             a group's alerts may hold {MAX_GROUP_ALERT_BYTES} in all)"
        )
    };
    // Each template is parsed once for all the alerts, its work bounded for the whole rule.
    let mut expander = Expander::new(rule.name, rule.external_url, t, rule.queries);
    for (labels, v) in results {
        let mut m: BTreeMap<String, String> = labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .cloned()
            .collect();
        for (k, tpl) in rule.labels {
            let val = expander.expand(tpl, &labels, v, MAX_EXPANSION_BYTES);
            if val.is_empty() {
                m.remove(k);
            } else {
                m.insert(k.clone(), val);
            }
        }
        m.insert("alertname".into(), rule.name.to_string());
        let l: Labels = m.into_iter().collect();
        used += labels_bytes(&l);
        if used > budget {
            return fail(over(used));
        }
        let mut annotations: Labels = Vec::with_capacity(rule.annotations.len());
        for (k, tpl) in rule.annotations {
            let text = expander.expand(tpl, &labels, v, MAX_EXPANSION_BYTES);
            used += k.len() + text.len();
            if used > budget {
                return fail(over(used));
            }
            annotations.push((k.clone(), text));
        }
        let fp = fingerprint(&l);
        if now.insert(fp, (l, annotations, v)).is_some() {
            return fail(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
    }
    let mut out = Stepped {
        queries: expander.wanted_queries(),
        ..Stepped::default()
    };
    let mut known: HashSet<u64> = HashSet::new();
    for a in prev {
        let fp = fingerprint(&a.labels);
        known.insert(fp);
        let mut a = a.clone();
        match now.get(&fp) {
            Some((_, annotations, v)) => {
                a.value = lookout_promql::format_value(*v);
                a.annotations = annotations.clone();
                a.keep_firing_since = None;
            }
            None => {
                let keep = a.state == AlertState::Firing && rule.keep_firing_for_ms > 0 && {
                    let since = *a.keep_firing_since.get_or_insert(t);
                    t - since < rule.keep_firing_for_ms
                };
                if !keep {
                    if a.state == AlertState::Firing {
                        out.resolved.push(a);
                    }
                    continue;
                }
            }
        }
        out.active.push(a);
    }
    for (fp, (labels, annotations, v)) in now {
        if known.contains(&fp) {
            continue;
        }
        out.active.push(Alert {
            labels,
            annotations,
            state: AlertState::Pending,
            active_at: t,
            fired_at: None,
            keep_firing_since: None,
            value: lookout_promql::format_value(v),
        });
    }
    let cap = effective_limit(limit).min(MAX_ALERTS_PER_RULE);
    if out.active.len() > cap {
        return fail(format!(
            "exceeded limit of {cap} with {} alerts",
            out.active.len()
        ));
    }
    for a in &mut out.active {
        if a.state == AlertState::Pending && t - a.active_at >= rule.for_ms {
            a.state = AlertState::Firing;
            a.fired_at = Some(t);
            out.fired.push(a.clone());
        }
    }
    // A stable order for the API and the page.
    out.active.sort_by(|a, b| a.labels.cmp(&b.labels));
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprints_match_prometheus() {
        // model.LabelSet{}.Fingerprint() is the FNV-1a offset; these two from Prometheus's own
        // tests (model/signature_test.go: TestLabelsToSignature).
        assert_eq!(fingerprint(&[]), 14_695_981_039_346_656_037);
        assert_eq!(
            fingerprint(&l(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ])),
            5_799_056_148_416_392_346
        );
    }

    #[test]
    fn templates_expand_labels_and_value() {
        let labels = l(&[("instance", "a:9100"), ("job", "node")]);
        assert_eq!(
            expand(
                "{{ $labels.instance }} is {{$value}} ({{ .Labels.job }}) {{ printf \"x\" }}",
                &labels,
                3.0
            ),
            "a:9100 is 3 (node) x"
        );
        assert_eq!(template_value(0.25), "0.25");
        // As Go's %v: exponent form below 1e-4 and from 1e6.
        for (v, go) in [
            (1e6, "1e+06"),
            (2_147_483_648.0, "2.147483648e+09"),
            (1e-5, "1e-05"),
            (-1.5e-7, "-1.5e-07"),
            (1e21, "1e+21"),
            (123_456.0, "123456"),
            (0.0001, "0.0001"),
            (30.0, "30"),
            (-2.5, "-2.5"),
            (0.0, "0"),
        ] {
            assert_eq!(template_value(v), go, "{v}");
        }
        assert_eq!(template_value(f64::NAN), "NaN");
    }

    fn rule<'a>(
        labels: &'a BTreeMap<String, String>,
        ann: &'a BTreeMap<String, String>,
        for_ms: i64,
        keep: i64,
    ) -> AlertRule<'a> {
        AlertRule {
            name: "Down",
            for_ms,
            keep_firing_for_ms: keep,
            labels,
            annotations: ann,
            external_url: "",
            queries: None,
        }
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let labels = BTreeMap::from([("severity".to_string(), "critical".to_string())]);
        let ann = BTreeMap::from([("summary".to_string(), "{{ $labels.i }} down".to_string())]);
        let r = rule(&labels, &ann, 120_000, 0);
        let res = || vec![(l(&[("__name__", "up"), ("i", "a")]), 0.0)];
        let (s1, e) = step(&r, &[], res(), 0, 0, MAX_GROUP_ALERT_BYTES);
        assert!(e.is_none());
        assert_eq!(s1.active[0].state, AlertState::Pending);
        assert_eq!(
            s1.active[0].labels,
            l(&[("alertname", "Down"), ("i", "a"), ("severity", "critical")])
        );
        assert_eq!(s1.active[0].annotations, l(&[("summary", "a down")]));
        let (s2, _) = step(&r, &s1.active, res(), 60_000, 0, MAX_GROUP_ALERT_BYTES);
        assert!(s2.fired.is_empty());
        let (s3, _) = step(&r, &s2.active, res(), 120_000, 0, MAX_GROUP_ALERT_BYTES);
        assert_eq!(s3.fired.len(), 1);
        assert_eq!(s3.active[0].state, AlertState::Firing);
        assert_eq!(s3.active[0].active_at, 0);
        // Still firing: not fired again.
        let (s4, _) = step(&r, &s3.active, res(), 180_000, 0, MAX_GROUP_ALERT_BYTES);
        assert!(s4.fired.is_empty() && s4.resolved.is_empty());
        let (s5, _) = step(&r, &s4.active, vec![], 240_000, 0, MAX_GROUP_ALERT_BYTES);
        assert_eq!(s5.resolved.len(), 1);
        assert!(s5.active.is_empty());
    }

    #[test]
    fn templates_ask_for_their_queries_and_use_the_results() {
        let labels = BTreeMap::new();
        let ann = BTreeMap::from([(
            "summary".to_string(),
            r#"{{ $labels.i }}: {{ query "sum(up)" | first | value }}"#.to_string(),
        )]);
        let mut r = rule(&labels, &ann, 0, 0);
        let res = || vec![(l(&[("i", "a")]), 1.0)];
        // Without results: the query is listed for the caller to run.
        let none = super::super::template::Queries::new();
        r.queries = Some(&none);
        let (s, _) = step(&r, &[], res(), 0, 0, MAX_GROUP_ALERT_BYTES);
        assert_eq!(s.queries, ["sum(up)"]);
        // With them: expanded, nothing more asked.
        let some = super::super::template::Queries::from([(
            "sum(up)".to_string(),
            Ok(vec![(Vec::new(), 7.0)]),
        )]);
        r.queries = Some(&some);
        let (s, _) = step(&r, &[], res(), 0, 0, MAX_GROUP_ALERT_BYTES);
        assert!(s.queries.is_empty());
        assert_eq!(s.active[0].annotations, l(&[("summary", "a: 7")]));
    }

    #[test]
    fn a_pending_alert_that_clears_is_dropped_without_a_resolve() {
        let (labels, ann) = (BTreeMap::new(), BTreeMap::new());
        let r = rule(&labels, &ann, 120_000, 0);
        let (s1, _) = step(
            &r,
            &[],
            vec![(l(&[("i", "a")]), 1.0)],
            0,
            0,
            MAX_GROUP_ALERT_BYTES,
        );
        let (s2, _) = step(&r, &s1.active, vec![], 60_000, 0, MAX_GROUP_ALERT_BYTES);
        assert!(s2.active.is_empty() && s2.resolved.is_empty());
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert() {
        let (labels, ann) = (BTreeMap::new(), BTreeMap::new());
        let r = rule(&labels, &ann, 0, 120_000);
        let (s1, _) = step(
            &r,
            &[],
            vec![(l(&[("i", "a")]), 1.0)],
            0,
            0,
            MAX_GROUP_ALERT_BYTES,
        );
        assert_eq!(s1.fired.len(), 1, "for 0 fires at once");
        let (s2, _) = step(&r, &s1.active, vec![], 60_000, 0, MAX_GROUP_ALERT_BYTES);
        assert_eq!(s2.active[0].keep_firing_since, Some(60_000));
        let (s3, _) = step(&r, &s2.active, vec![], 120_000, 0, MAX_GROUP_ALERT_BYTES);
        assert!(s3.resolved.is_empty(), "60s of 120s kept");
        let (s4, _) = step(&r, &s3.active, vec![], 180_000, 0, MAX_GROUP_ALERT_BYTES);
        assert_eq!(s4.resolved.len(), 1);
    }

    #[test]
    fn limits_and_duplicates_are_errors() {
        let (labels, ann) = (BTreeMap::new(), BTreeMap::new());
        let r = rule(&labels, &ann, 0, 0);
        let two = vec![(l(&[("i", "a")]), 1.0), (l(&[("i", "b")]), 1.0)];
        let (s, e) = step(&r, &[], two.clone(), 0, 1, MAX_GROUP_ALERT_BYTES);
        assert!(s.active.is_empty());
        assert_eq!(e.unwrap(), "exceeded limit of 1 with 2 alerts");
        let dup = vec![
            (l(&[("__name__", "x"), ("i", "a")]), 1.0),
            (l(&[("__name__", "y"), ("i", "a")]), 1.0),
        ];
        let (_, e) = step(&r, &[], dup.clone(), 0, 0, MAX_GROUP_ALERT_BYTES);
        assert!(e.unwrap().contains("same labelset"));
        assert!(record("r", &BTreeMap::new(), dup, 0).is_err());
        let rec = record("job:x", &BTreeMap::from([("a".into(), "b".into())]), two, 0).unwrap();
        assert_eq!(
            rec[0].0,
            l(&[("__name__", "job:x"), ("a", "b"), ("i", "a")])
        );
    }

    #[test]
    fn an_alerting_rule_has_at_most_1000_alerts() {
        let (labels, ann) = (BTreeMap::new(), BTreeMap::new());
        let r = rule(&labels, &ann, 0, 0);
        let many = |n: usize| -> Vec<(Labels, f64)> {
            (0..n).map(|i| (l(&[("i", &i.to_string())]), 1.0)).collect()
        };
        let (s, e) = step(&r, &[], many(1_001), 0, 5_000, MAX_GROUP_ALERT_BYTES);
        assert!(s.active.is_empty() && s.fired.is_empty());
        assert_eq!(e.unwrap(), "exceeded limit of 1000 with 1001 alerts");
        let (s, e) = step(&r, &[], many(1_000), 0, 0, MAX_GROUP_ALERT_BYTES);
        assert!(e.is_none());
        assert_eq!(s.fired.len(), 1_000);
    }

    #[test]
    fn pending_for_is_not_resumed_after_a_long_outage() {
        let (labels, ann) = (BTreeMap::new(), BTreeMap::new());
        let r = rule(&labels, &ann, 600_000, 0);
        let (s1, _) = step(
            &r,
            &[],
            vec![(l(&[("i", "a")]), 1.0)],
            0,
            0,
            MAX_GROUP_ALERT_BYTES,
        );
        let state = |alerts: Vec<Alert>| GroupState {
            duration_ms: 0,
            rules: vec![RuleState {
                alerts,
                ..RuleState::default()
            }],
        };
        // A short gap: `for` resumes from 0 and the alert fires at 10 min.
        let mut short = state(s1.active.clone());
        forget_stale_pending(&mut short, 0, 600_000);
        let (s2, _) = step(
            &r,
            &short.rules[0].alerts,
            vec![(l(&[("i", "a")]), 1.0)],
            600_000,
            0,
            MAX_GROUP_ALERT_BYTES,
        );
        assert_eq!(s2.fired.len(), 1);
        // Two hours unevaluated: `for` starts again, nothing fires at once.
        let t = 2 * FOR_OUTAGE_TOLERANCE_MS;
        let mut long = state(s1.active.clone());
        forget_stale_pending(&mut long, 0, t);
        assert_eq!(long.rules[0].alerts[0].active_at, t);
        let (s3, _) = step(
            &r,
            &long.rules[0].alerts,
            vec![(l(&[("i", "a")]), 1.0)],
            t,
            0,
            MAX_GROUP_ALERT_BYTES,
        );
        assert!(s3.fired.is_empty());
        assert_eq!(s3.active[0].state, AlertState::Pending);
        // A firing alert stays firing.
        let mut firing = state(s2.active.clone());
        forget_stale_pending(&mut firing, 600_000, 600_000 + t);
        assert_eq!(firing.rules[0].alerts[0].active_at, 0);
    }

    #[test]
    fn expansions_and_a_groups_alerts_are_bounded() {
        // `{{ $labels }}` repeated over a long label value is cut at the cap, not multiplied.
        let long = l(&[("x", &"v".repeat(10_000))]);
        let tpl = "{{ $labels }}".repeat(1_000);
        let out = expand(&tpl, &long, 1.0);
        assert!(out.len() <= MAX_EXPANSION_BYTES, "{}", out.len());
        assert!(out.ends_with('…') && out.starts_with("map[x:vvv"));
        // Many alerts with big annotations fail the rule once the group's budget is spent.
        let labels = BTreeMap::new();
        let ann = BTreeMap::from([("summary".to_string(), tpl.clone())]);
        let r = rule(&labels, &ann, 0, 0);
        let many: Vec<(Labels, f64)> = (0..2_000)
            .map(|i| (l(&[("i", &i.to_string()), ("x", &"v".repeat(10_000))]), 1.0))
            .collect();
        let (s, e) = step(&r, &[], many.clone(), 0, 0, MAX_GROUP_ALERT_BYTES);
        assert!(s.active.is_empty());
        assert!(e.unwrap().contains("labels and annotations take more than"));
        // What fits is kept, each annotation within the cap.
        let (s, e) = step(&r, &[], many[..10].to_vec(), 0, 0, MAX_GROUP_ALERT_BYTES);
        assert!(e.is_none());
        assert_eq!(s.active.len(), 10);
        assert!(s
            .active
            .iter()
            .all(|a| alert_bytes(a) < 2 * MAX_EXPANSION_BYTES + 10_100));
    }
}
