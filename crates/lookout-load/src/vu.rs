//! A virtual user: its connections, buffers and extracted values, and one iteration of its
//! scenario's steps (requests with checks, extractions and think time, and pauses).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cookies::{with_cookie, Jar};
use crate::http::{write_request, Client, Conns, Failure, Origin, Prepared, Response, Timings};
use crate::metrics::{Aggregate, Buffer, HttpSample, Record};
use crate::spec::{CheckKind, ExtractFrom, HttpOptions, RequestStep, Scenario, Step};
use crate::template::Values;

/// What every VU of a run shares.
pub struct Shared {
    pub client: Client,
    pub agg: Arc<Mutex<Aggregate>>,
    pub http: HttpOptions,
    pub started: Instant,
}

/// A request rendered for sending.
struct Rendered {
    url: url::Url,
    origin: Origin,
    /// The step sets its own `Cookie` header: the jar stays out of it.
    has_cookie_header: bool,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    bytes: Vec<u8>,
}

/// One virtual user.
pub struct Vu {
    /// 1-based, unique in the run (k6's `__VU`).
    pub id: u64,
    conns: Conns,
    resp: Response,
    vars: Vec<String>,
    rng: StdRng,
    iterations: u64,
    buf: Buffer,
    agg: Arc<Mutex<Aggregate>>,
    /// Requests that never change, rendered once.
    fixed: Vec<Option<Rendered>>,
    text: String,
    /// The last time this VU read the clock: a closed-model iteration starts from it, which
    /// saves a clock read per iteration (clock reads were a tenth of the generator's CPU).
    pub clock: Instant,
    /// The request timeout timer, kept armed a little past the current request's deadline and
    /// moved only when a deadline passes it: one timer update per VU per ~1% of the timeout
    /// instead of one per request. A request times out at most 1% late.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: Instant,
    /// How long the last request took: after a slow one, records are flushed before the next
    /// request, so they never wait a whole response time to reach the live figures.
    last_took: Duration,
    /// Cookies the servers set, sent back per host (k6 keeps one jar per VU).
    jar: Jar,
    /// Request bytes with the jar's cookies added, when there are any.
    with_cookies: Vec<u8>,
}

impl Drop for Vu {
    fn drop(&mut self) {
        // A VU dropped mid-run (graceful stop) still reports what it recorded.
        self.buf.flush(&self.agg);
    }
}

/// Whether a status counts as a success (k6's default expected statuses: 200–399).
fn expected(status: u16) -> bool {
    (200..400).contains(&status)
}

impl Vu {
    /// A VU for `scenario`.
    pub fn new(id: u64, scenario: &Scenario, shared: &Shared) -> Vu {
        Vu {
            id,
            conns: Conns::default(),
            resp: Response::default(),
            vars: vec![String::new(); scenario.vars],
            rng: StdRng::from_entropy(),
            iterations: 0,
            buf: Buffer::default(),
            agg: shared.agg.clone(),
            fixed: scenario.steps.iter().map(|_| None).collect(),
            text: String::new(),
            clock: Instant::now(),
            timer: None,
            armed: Instant::now(),
            last_took: Duration::ZERO,
            jar: Jar::default(),
            with_cookies: Vec::new(),
        }
    }

    /// Sends what the VU has buffered.
    pub fn flush(&mut self) {
        self.buf.flush(&self.agg);
    }

    /// Sends the buffer if its oldest record has waited long enough.
    pub fn flush_due(&mut self) {
        if self.buf.due(Instant::now()) {
            self.flush();
        }
    }

    fn ms(shared: &Shared, at: Instant) -> u32 {
        at.saturating_duration_since(shared.started).as_millis() as u32
    }

    /// Runs one iteration. `due` is its intended start (arrival-rate executors): the first
    /// request and the iteration's duration are timed from it, so a late start shows as latency
    /// rather than disappearing (coordinated omission).
    pub async fn iteration(
        &mut self,
        scenario: &Scenario,
        scenario_idx: usize,
        shared: &Shared,
        iteration: u64,
        due: Option<Instant>,
    ) {
        let began = due.unwrap_or(self.clock);
        let row: Option<usize> = scenario.data.as_ref().map(|d| {
            if d.random {
                self.rng.gen_range(0..d.rows.len())
            } else {
                (iteration % d.rows.len() as u64) as usize
            }
        });
        let mut first = true;
        for (si, step) in scenario.steps.iter().enumerate() {
            match step {
                Step::Sleep(lo, hi) => self.pause(*lo, *hi).await,
                Step::Request(req) => {
                    let start = if first { began } else { self.clock };
                    // Only an arrival-rate iteration's first request is timed from when it was due.
                    let from_due = first && due.is_some();
                    first = false;
                    self.request(scenario, si, req, shared, iteration, row, start, from_due)
                        .await;
                    if let Some((lo, hi)) = req.think {
                        self.pause(lo, hi).await;
                    }
                }
            }
        }
        self.iterations += 1;
        let now = self.clock;
        let rec = Record::Iteration {
            at_ms: Self::ms(shared, now),
            scenario: scenario_idx as u16,
            us: now
                .saturating_duration_since(began)
                .as_micros()
                .min(u32::MAX as u128) as u32,
        };
        if self.buf.push(rec, now) {
            self.flush();
        }
        if shared.http.no_connection_reuse {
            self.conns.clear();
        }
    }

    async fn pause(&mut self, lo: Duration, hi: Duration) {
        let d = if hi > lo {
            self.rng.gen_range(lo..=hi)
        } else {
            lo
        };
        // Nothing waits out a pause in the buffer.
        self.flush();
        tokio::time::sleep(d).await;
        self.clock = Instant::now();
    }

    fn render(
        &mut self,
        scenario: &Scenario,
        req: &RequestStep,
        shared: &Shared,
        iteration: u64,
        row: Option<usize>,
    ) -> Result<Rendered, String> {
        let row = match (&scenario.data, row) {
            (Some(d), Some(r)) => Some(d.rows[r].as_slice()),
            _ => None,
        };
        let mut values = Values {
            vu: self.id,
            iteration,
            vu_iteration: self.iterations,
            row,
            vars: &self.vars,
            rng: &mut self.rng,
        };
        self.text.clear();
        req.url.render(&mut self.text, &mut values);
        let url = url::Url::parse(&self.text).map_err(|e| format!("{}: {e}", self.text))?;
        let origin = Origin::of(&url).map_err(|f| f.message)?;
        let mut headers = Vec::with_capacity(req.headers.len());
        for (k, t) in &req.headers {
            let mut v = String::new();
            t.render(&mut v, &mut values);
            headers.push((k.clone(), v));
        }
        let mut body = String::new();
        if let Some(b) = &req.body {
            b.render(&mut body, &mut values);
        }
        let mut r = Rendered {
            url,
            origin,
            has_cookie_header: headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("cookie")),
            headers,
            body: body.into_bytes(),
            bytes: Vec::new(),
        };
        encode(&mut r, &req.method, &shared.http.user_agent);
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    async fn request(
        &mut self,
        scenario: &Scenario,
        si: usize,
        req: &RequestStep,
        shared: &Shared,
        iteration: u64,
        row: Option<usize>,
        start: Instant,
        from_due: bool,
    ) {
        let is_fixed = req.fixed;
        let owned;
        let rendered: &Rendered = if is_fixed {
            if self.fixed[si].is_none() {
                match self.render(scenario, req, shared, iteration, row) {
                    Ok(r) => self.fixed[si] = Some(r),
                    Err(e) => return self.invalid(req, shared, start, &e),
                }
            }
            // Taken out and put back below, so the response buffers can be borrowed meanwhile.
            owned = self.fixed[si].take();
            owned.as_ref().expect("rendered above")
        } else {
            match self.render(scenario, req, shared, iteration, row) {
                Ok(r) => {
                    owned = Some(r);
                    owned.as_ref().expect("just set")
                }
                Err(e) => return self.invalid(req, shared, start, &e),
            }
        };
        let mut method = req.method.clone();
        let mut hop: Option<Rendered> = None;
        let mut redirects = 0;
        let mut step_start = start;
        let mut final_ok: Option<(u16, Duration)> = None;
        loop {
            let current = hop.as_ref().unwrap_or(rendered);
            if self.last_took > Duration::from_millis(20) || self.buf.due(step_start) {
                self.flush();
            }
            let cookie = if self.jar.is_empty() || current.has_cookie_header {
                None
            } else {
                self.jar.header_for(&current.origin.host)
            };
            let bytes: &[u8] = match cookie {
                Some(c) => {
                    self.with_cookies = with_cookie(&current.bytes, &c);
                    &self.with_cookies
                }
                None => &current.bytes,
            };
            let prepared = Prepared {
                origin: &current.origin,
                bytes,
                head_only: method == "HEAD",
            };
            let deadline = step_start + req.timeout;
            if self.timer.is_none() || self.armed < deadline {
                self.armed = deadline + (req.timeout / 100).max(Duration::from_millis(1));
                match self.timer.as_mut() {
                    Some(t) => t.as_mut().reset(self.armed.into()),
                    None => {
                        self.timer = Some(Box::pin(tokio::time::sleep_until(self.armed.into())))
                    }
                }
            }
            let timer = self.timer.as_mut().expect("armed above");
            let result = tokio::select! {
                biased;
                r = shared.client.send(&mut self.conns, &prepared, &mut self.resp, step_start) => r,
                () = timer.as_mut() => Err((
                    Timings::default(),
                    Failure::new(1050, format!("request timeout after {}", crate::duration::human(req.timeout))),
                )),
            };
            let now = match &result {
                Ok(t) => t.done.unwrap_or_else(Instant::now),
                Err(_) => Instant::now(),
            };
            self.last_took = now.saturating_duration_since(step_start);
            self.clock = now;
            let (sample, outcome) = match result {
                Ok(t) => {
                    // From the due time, not the actual send: a late start is latency too.
                    // Otherwise k6's definition: sending + waiting + receiving.
                    let duration = if from_due && redirects == 0 {
                        now.saturating_duration_since(step_start)
                            .saturating_sub(t.connecting + t.tls_handshaking)
                            .max(t.duration())
                    } else {
                        t.duration()
                    };
                    let status = self.resp.status;
                    let sample = HttpSample {
                        at_ms: Self::ms(shared, now),
                        request: req.id as u32,
                        status,
                        failed: !expected(status),
                        error_code: if status >= 400 {
                            1000 + u32::from(status)
                        } else {
                            0
                        },
                        us: phases(duration, &t),
                        sent: current.bytes.len() as u32,
                        received: self.resp.received as u32,
                    };
                    (sample, Some((status, duration)))
                }
                Err((t, failure)) => {
                    let sample = HttpSample {
                        at_ms: Self::ms(shared, now),
                        request: req.id as u32,
                        status: 0,
                        failed: true,
                        error_code: failure.code,
                        us: phases(now.saturating_duration_since(step_start), &t),
                        sent: 0,
                        received: 0,
                    };
                    (sample, None)
                }
            };
            if self.buf.push(Record::Http(sample), now) {
                self.flush();
            }
            let Some((status, took)) = outcome else { break };
            if self.resp.sets_cookies {
                for h in self.resp.headers_named("set-cookie") {
                    self.jar.store(&current.origin.host, h);
                }
            }
            if matches!(status, 301 | 302 | 303 | 307 | 308)
                && redirects < shared.http.max_redirects
            {
                if let Some(next) = self
                    .resp
                    .header("location")
                    .and_then(|l| current.url.join(l).ok())
                {
                    redirects += 1;
                    if status == 303 || ((status == 301 || status == 302) && method == "POST") {
                        method = "GET".into();
                    }
                    let keep_body = method != "GET" && method != "HEAD";
                    let Ok(origin) = Origin::of(&next) else { break };
                    let mut r = Rendered {
                        url: next,
                        origin,
                        has_cookie_header: current.has_cookie_header,
                        headers: current.headers.clone(),
                        body: if keep_body {
                            current.body.clone()
                        } else {
                            Vec::new()
                        },
                        bytes: Vec::new(),
                    };
                    encode(&mut r, &method, &shared.http.user_agent);
                    hop = Some(r);
                    step_start = now;
                    continue;
                }
            }
            final_ok = Some((status, took));
            break;
        }
        self.finish(req, final_ok, self.clock);
        if is_fixed {
            self.fixed[si] = owned;
        }
    }

    /// A request whose rendered URL is unusable: a failed sample and failed checks.
    fn invalid(&mut self, req: &RequestStep, shared: &Shared, start: Instant, _why: &str) {
        let now = Instant::now();
        self.clock = now;
        let sample = HttpSample {
            at_ms: Self::ms(shared, now),
            request: req.id as u32,
            status: 0,
            failed: true,
            error_code: 1020,
            us: [
                micros(now.saturating_duration_since(start)),
                0,
                0,
                0,
                0,
                0,
                0,
            ],
            sent: 0,
            received: 0,
        };
        if self.buf.push(Record::Http(sample), now) {
            self.flush();
        }
        self.finish(req, None, now);
    }

    /// Runs checks and extractions on the final response (`None`: no response).
    fn finish(&mut self, req: &RequestStep, outcome: Option<(u16, Duration)>, now: Instant) {
        let json: Option<serde_json::Value> = match outcome {
            Some(_) if req.needs_json => serde_json::from_slice(self.resp.body()).ok(),
            _ => None,
        };
        for check in &req.checks {
            let pass = match outcome {
                None => false,
                Some((status, took)) => match &check.kind {
                    CheckKind::Status(list) => list.contains(&status),
                    CheckKind::Header(name, needle) => self
                        .resp
                        .header(name)
                        .is_some_and(|v| v.contains(needle.as_str())),
                    CheckKind::BodyContains(needle) => {
                        memchr::memmem::find(self.resp.body(), needle.as_bytes()).is_some()
                    }
                    CheckKind::JsonPath(path, want) => json
                        .as_ref()
                        .is_some_and(|j| path.query(j).all().into_iter().any(|v| v == want)),
                    CheckKind::Duration(limit, inclusive) => {
                        if *inclusive {
                            took <= *limit
                        } else {
                            took < *limit
                        }
                    }
                },
            };
            if self.buf.push(
                Record::Check {
                    check: check.id as u32,
                    pass,
                },
                now,
            ) {
                self.flush();
            }
        }
        for ex in &req.extracts {
            let value = match (&ex.from, outcome) {
                (_, None) => None,
                (ExtractFrom::JsonPath(p), _) => json.as_ref().and_then(|j| {
                    p.query(j).all().first().map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                }),
                (ExtractFrom::Header(h), _) => self.resp.header(h).map(str::to_string),
                (ExtractFrom::Regex(re), _) => {
                    let body = String::from_utf8_lossy(self.resp.body());
                    re.captures(&body)
                        .and_then(|c| c.get(1).or_else(|| c.get(0)))
                        .map(|m| m.as_str().to_string())
                }
            };
            self.vars[ex.slot] = value.unwrap_or_default();
        }
    }
}

/// Writes the request bytes of a rendered request.
fn encode(r: &mut Rendered, method: &str, user_agent: &str) {
    let mut target = r.url.path().to_string();
    if let Some(q) = r.url.query() {
        target.push('?');
        target.push_str(q);
    }
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    write_request(
        &mut r.bytes,
        method,
        &target,
        &r.origin.host_header(),
        user_agent,
        &headers,
        &r.body,
    );
}

/// A sample's times in [`HttpSample::us`] order: the duration, then each phase.
fn phases(duration: Duration, t: &Timings) -> [u32; 7] {
    [
        micros(duration),
        micros(t.blocked),
        micros(t.connecting),
        micros(t.tls_handshaking),
        micros(t.sending),
        micros(t.waiting),
        micros(t.receiving),
    ]
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}
