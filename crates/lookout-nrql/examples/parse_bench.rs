//! Parse-and-plan time of typical dashboard and alert queries (issue 8's target: under 1 ms),
//! run by `bench/nrql.sh`: each query is parsed and its time window resolved many times; the
//! median per query is printed next to the target.

use std::time::Instant;

const QUERIES: &[&str] = &[
    "SELECT count(*) FROM Transaction",
    "SELECT rate(count(*), 1 minute) FROM Transaction FACET appName SINCE 1 day ago TIMESERIES AUTO",
    "SELECT percentile(duration, 50, 95, 99) FROM Transaction WHERE appName = 'checkout' FACET name LIMIT 20 SINCE 3 hours ago TIMESERIES 5 minutes",
    "SELECT percentage(count(*), WHERE error IS TRUE) AS 'Error %', apdex(duration, t: 0.5) FROM Transaction FACET appName SINCE 1 week ago COMPARE WITH 1 week ago",
    "SELECT filter(count(*), WHERE http.statusCode >= 500) / count(*) * 100 FROM Transaction WHERE appName IN ('a', 'b', 'c') AND name NOT LIKE '%health%' SINCE today WITH TIMEZONE 'Europe/Paris'",
    "FROM Transaction SELECT average(duration), max(duration), min(duration), stddev(duration) FACET CASES (WHERE duration < 0.1 AS 'fast', WHERE duration < 1 AS 'ok') SINCE last week UNTIL this week",
];

fn main() {
    const ROUNDS: usize = 20_000;
    const TARGET_US: f64 = 1_000.0;
    let now = 1_710_344_520_000;
    println!("NRQL parse + plan (time window), {ROUNDS} rounds each:");
    let mut worst = 0.0f64;
    for q in QUERIES {
        let mut samples = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let parsed = lookout_nrql::parse(q).expect("benchmark queries parse");
            let w = lookout_nrql::time::window(&parsed, now).expect("benchmark windows resolve");
            std::hint::black_box(w);
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        samples.sort_by(f64::total_cmp);
        let median = samples[ROUNDS / 2];
        let p99 = samples[ROUNDS * 99 / 100];
        worst = worst.max(median);
        let short: String = q.chars().take(60).collect();
        println!("  {median:8.1} µs median, {p99:8.1} µs p99   {short}…");
    }
    println!("  worst median {worst:.1} µs   target < {TARGET_US:.0} µs");
    if worst >= TARGET_US {
        std::process::exit(1);
    }
}
