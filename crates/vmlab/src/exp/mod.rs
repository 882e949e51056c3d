//! Experiments: each one runs designs side by side and checks the claims a
//! seed document makes about them (`vmlab exp <name>`, docs/EXPERIMENTS.md).
//!
//! Every experiment produces one [`Report`]: rows of measurements and a list
//! of [`Claim`]s. A claim names its seed, what the seed says, the metric that
//! tests it, the measured value and the threshold, and a [`Verdict`] that is
//! *computed* from those numbers by the claim's [`Comparison`], never written
//! by hand:
//!
//! - `reproduced` when the measured value passes the threshold;
//! - `partial` when it misses the threshold but passes the looser *partial*
//!   threshold (by default [`PARTIAL_FRACTION`] of the way: half the
//!   threshold for `at_least`, twice it for `at_most`, the band widened by 2x
//!   on each side for `within`);
//! - `refuted` otherwise, or when the metric is not a finite number.
//!
//! A claim may also require side conditions ([`Check`]s, each with its own
//! measured value, comparison and verdict): the claim is `reproduced` only if
//! its main metric and every requirement are; `refuted` if its main metric
//! is; `partial` in every other case.
//!
//! Latencies are the [`median`] of at least [`MIN_RUNS`] runs.

pub mod fork;
pub mod linux_cgroup;
pub mod pte_lock;
pub mod reclaim;
pub mod rmap;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Fewest runs an experiment measures a latency over.
pub const MIN_RUNS: usize = 5;

/// How far short of its threshold a measurement may fall and still count as
/// `partial`: a factor applied to the threshold (see the module docs).
pub const PARTIAL_FRACTION: f64 = 0.5;

/// Why an experiment did not produce a report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpError {
    /// Bad parameters (the CLI exits 2).
    #[error("{0}")]
    Usage(String),
    /// The experiment went wrong while running (the CLI exits 1).
    #[error("{0}")]
    Runtime(String),
}

/// After an experiment's machine has ended every process: its invariants
/// hold and only the frames it keeps for itself are in use. `what` names the
/// design for the message, `after` what has ended ("every process exited").
pub fn check_all_freed(m: &crate::mm::system::Machine, what: &str, after: &str) -> Result<(), ExpError> {
    m.check()
        .map_err(|e| ExpError::Runtime(format!("{what}: invariant check failed: {e}")))?;
    let used = m.stats().frames_used;
    if used != m.reserved_frames() as u64 {
        return Err(ExpError::Runtime(format!(
            "{what}: {used} frames still in use after {after} (expected {})",
            m.reserved_frames()
        )));
    }
    Ok(())
}

/// A `json!({...})` object literal as a row (a map).
pub fn row_of(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The median of `xs` (the mean of the two middle values for an even count);
/// `None` if `xs` is empty or holds a NaN.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The median of integer samples (for an even count, the mean of the two
/// middle values, rounded down); `None` if `xs` is empty.
pub fn median_u64(xs: &[u64]) -> Option<u64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        let (a, b) = (v[n / 2 - 1], v[n / 2]);
        a / 2 + b / 2 + (a % 2 + b % 2) / 2
    })
}

/// `num / den` as a float; NaN if `den` is zero (a NaN metric is refuted).
pub fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        f64::NAN
    } else {
        num / den
    }
}

/// The outcome of a claim.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Reproduced,
    Partial,
    Refuted,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Partial => "partial",
            Verdict::Refuted => "refuted",
        }
    }
}

/// How a measured value is compared with its threshold.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Comparison {
    /// measured ≥ threshold.
    AtLeast(f64),
    /// measured ≤ threshold.
    AtMost(f64),
    /// lo ≤ measured ≤ hi.
    Within(f64, f64),
}

impl Comparison {
    /// Whether `measured` passes (a non-finite value never does).
    pub fn holds(self, measured: f64) -> bool {
        if !measured.is_finite() {
            return false;
        }
        match self {
            Comparison::AtLeast(t) => measured >= t,
            Comparison::AtMost(t) => measured <= t,
            Comparison::Within(lo, hi) => lo <= measured && measured <= hi,
        }
    }

    /// The same comparison relaxed by `fraction` (in (0, 1]): the threshold
    /// times it for `AtLeast`, divided by it for `AtMost`, the band widened
    /// by that factor on both sides for `Within`.
    pub fn relaxed(self, fraction: f64) -> Comparison {
        match self {
            Comparison::AtLeast(t) => Comparison::AtLeast(t * fraction),
            Comparison::AtMost(t) => Comparison::AtMost(t / fraction),
            Comparison::Within(lo, hi) => Comparison::Within(lo * fraction, hi / fraction),
        }
    }

    /// `at_least`, `at_most` or `within`.
    pub fn rule(self) -> &'static str {
        match self {
            Comparison::AtLeast(_) => "at_least",
            Comparison::AtMost(_) => "at_most",
            Comparison::Within(..) => "within",
        }
    }

    /// The threshold as JSON: a number, or `[lo, hi]` for `within`.
    pub fn threshold_json(self) -> Value {
        match self {
            Comparison::AtLeast(t) | Comparison::AtMost(t) => num(t),
            Comparison::Within(lo, hi) => Value::Array(vec![num(lo), num(hi)]),
        }
    }

    /// The threshold for people: `≥ 20`, `≤ 0`, `0.5..2`.
    pub fn describe(self) -> String {
        match self {
            Comparison::AtLeast(t) => format!(">= {}", short(t)),
            Comparison::AtMost(t) => format!("<= {}", short(t)),
            Comparison::Within(lo, hi) => format!("{}..{}", short(lo), short(hi)),
        }
    }
}

/// The verdict of one measured value: reproduced if it passes `threshold`,
/// partial if it passes `partial`, refuted otherwise.
pub fn verdict_of(measured: f64, threshold: Comparison, partial: Option<Comparison>) -> Verdict {
    if threshold.holds(measured) {
        Verdict::Reproduced
    } else if partial.is_some_and(|p| p.holds(measured)) {
        Verdict::Partial
    } else {
        Verdict::Refuted
    }
}

/// A claim's verdict from its main verdict and its requirements' verdicts.
pub fn combine(main: Verdict, requires: impl IntoIterator<Item = Verdict>) -> Verdict {
    match main {
        Verdict::Refuted => Verdict::Refuted,
        Verdict::Partial => Verdict::Partial,
        Verdict::Reproduced => {
            if requires.into_iter().all(|v| v == Verdict::Reproduced) {
                Verdict::Reproduced
            } else {
                Verdict::Partial
            }
        }
    }
}

/// One metric compared with a threshold. Serialised as `{"metric",
/// "measured", "rule", "threshold", "partial", "verdict"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    metric: String,
    measured: f64,
    threshold: Comparison,
    partial: Option<Comparison>,
    verdict: Verdict,
}

impl Check {
    /// A check with no partial band: reproduced or refuted.
    pub fn new(metric: impl Into<String>, measured: f64, threshold: Comparison) -> Check {
        Check {
            metric: metric.into(),
            measured,
            threshold,
            partial: None,
            verdict: verdict_of(measured, threshold, None),
        }
    }

    /// Allow `partial` with the threshold relaxed by `fraction`.
    pub fn with_partial_fraction(self, fraction: f64) -> Check {
        let p = self.threshold.relaxed(fraction);
        self.with_partial(p)
    }

    /// Allow `partial` when the measured value passes `partial`.
    pub fn with_partial(mut self, partial: Comparison) -> Check {
        self.partial = Some(partial);
        self.verdict = verdict_of(self.measured, self.threshold, self.partial);
        self
    }

    pub fn metric(&self) -> &str {
        &self.metric
    }
    pub fn measured(&self) -> f64 {
        self.measured
    }
    pub fn threshold(&self) -> Comparison {
        self.threshold
    }
    pub fn partial(&self) -> Option<Comparison> {
        self.partial
    }
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    fn write_fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("metric", &self.metric)?;
        m.serialize_entry("measured", &num(self.measured))?;
        m.serialize_entry("rule", self.threshold.rule())?;
        m.serialize_entry("threshold", &self.threshold.threshold_json())?;
        m.serialize_entry("partial", &self.partial.map_or(Value::Null, |p| p.threshold_json()))?;
        m.serialize_entry("verdict", &self.verdict)
    }
}

impl Serialize for Check {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.write_fields(&mut m)?;
        m.end()
    }
}

/// A claim of a seed document, tested by one metric (and maybe side
/// conditions). Serialised as `{"seed", "claim", "metric", "measured",
/// "rule", "threshold", "partial", "verdict", "requires": [Check...]}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    seed: String,
    claim: String,
    main: Check,
    requires: Vec<Check>,
    verdict: Verdict,
}

impl Claim {
    /// A claim whose verdict is `partial` when the measured value passes the
    /// threshold relaxed by [`PARTIAL_FRACTION`].
    pub fn new(
        seed: impl Into<String>,
        claim: impl Into<String>,
        metric: impl Into<String>,
        measured: f64,
        threshold: Comparison,
    ) -> Claim {
        Claim::exact(seed, claim, metric, measured, threshold).with_partial(threshold.relaxed(PARTIAL_FRACTION))
    }

    /// A claim with no partial band (reproduced or refuted, unless a
    /// requirement fails).
    pub fn exact(
        seed: impl Into<String>,
        claim: impl Into<String>,
        metric: impl Into<String>,
        measured: f64,
        threshold: Comparison,
    ) -> Claim {
        let main = Check::new(metric, measured, threshold);
        let verdict = main.verdict;
        Claim {
            seed: seed.into(),
            claim: claim.into(),
            main,
            requires: Vec::new(),
            verdict,
        }
    }

    /// Replace the partial band of the main metric.
    pub fn with_partial(mut self, partial: Comparison) -> Claim {
        self.main = self.main.with_partial(partial);
        self.recompute();
        self
    }

    /// Add a side condition the claim needs to be `reproduced`.
    pub fn requires(mut self, check: Check) -> Claim {
        self.requires.push(check);
        self.recompute();
        self
    }

    fn recompute(&mut self) {
        self.verdict = combine(self.main.verdict, self.requires.iter().map(|c| c.verdict));
    }

    pub fn seed(&self) -> &str {
        &self.seed
    }
    pub fn claim(&self) -> &str {
        &self.claim
    }
    pub fn main(&self) -> &Check {
        &self.main
    }
    pub fn requirements(&self) -> &[Check] {
        &self.requires
    }
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }
}

impl Serialize for Claim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("seed", &self.seed)?;
        m.serialize_entry("claim", &self.claim)?;
        self.main.write_fields(&mut m)?;
        m.serialize_entry("requires", &self.requires)?;
        m.end()
    }
}

/// How a column of the row table shows its values.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// As is, left aligned.
    Text,
    /// An integer.
    Int,
    /// A byte count, with a binary unit (`16MiB`).
    Bytes,
    /// Nanoseconds, scaled (`812 ns`, `3.41 µs`, `12.7 ms`, `1.20 s`).
    Nanos,
    /// A number with two decimals.
    Float,
}

/// One column of the row table: the row key it shows and its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub key: &'static str,
    pub header: &'static str,
    pub format: Format,
}

impl Column {
    pub const fn new(key: &'static str, header: &'static str, format: Format) -> Column {
        Column { key, header, format }
    }
}

/// The result of one experiment. Serialised as ONE JSON object:
/// `{"experiment", "config", "params", "rows": [...], "claims": [...]}`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The experiment's name (`fork`).
    pub experiment: String,
    /// The machine config the experiment started from (defaults, --config, --set).
    pub config: Value,
    /// The experiment's own parameters (sizes, runs, ...).
    pub params: Value,
    /// One JSON object per measurement.
    pub rows: Vec<Map<String, Value>>,
    pub claims: Vec<Claim>,
    /// Which row keys the human table shows, in order (not in the JSON).
    #[serde(skip)]
    pub columns: Vec<Column>,
    /// Lines printed under the tables (not in the JSON).
    #[serde(skip)]
    pub notes: Vec<String>,
}

impl Report {
    /// The report as one pretty-printed JSON object, with a final newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self).map(|s| s + "\n")
    }

    /// The human-readable report: the rows table, then the claims.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "vmlab exp {}", self.experiment);
        let _ = writeln!(o, "\nmeasurements (latencies are medians)");
        let headers: Vec<&str> = self.columns.iter().map(|c| c.header).collect();
        let right: Vec<bool> = self.columns.iter().map(|c| c.format != Format::Text).collect();
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .map(|c| format_value(r.get(c.key).unwrap_or(&Value::Null), c.format))
                    .collect()
            })
            .collect();
        o.push_str(&table(&headers, &right, &cells));
        let _ = writeln!(o, "\nclaims");
        let cells: Vec<Vec<String>> = self
            .claims
            .iter()
            .enumerate()
            .map(|(i, c)| {
                vec![
                    (i + 1).to_string(),
                    c.seed.clone(),
                    c.verdict.as_str().to_string(),
                    short(c.main.measured),
                    c.main.threshold.describe(),
                    c.main.partial.map_or_else(|| "-".to_string(), |p| p.describe()),
                    c.main.metric.clone(),
                ]
            })
            .collect();
        o.push_str(&table(
            &["#", "seed", "verdict", "measured", "threshold", "partial", "metric"],
            &[true, false, false, true, false, false, false],
            &cells,
        ));
        for (i, c) in self.claims.iter().enumerate() {
            let _ = writeln!(o, "  {}. {}", i + 1, c.claim);
            for r in &c.requires {
                let _ = writeln!(
                    o,
                    "     requires {}: {} {} -> {}",
                    r.metric,
                    short(r.measured),
                    r.threshold.describe(),
                    r.verdict.as_str()
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(o);
            for n in &self.notes {
                let _ = writeln!(o, "{n}");
            }
        }
        o
    }
}

/// A JSON number, or null for NaN and infinities (which JSON cannot hold).
pub fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// A number for people: integers as is, others with up to 3 significant decimals.
pub fn short(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x == x.trunc() && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let a = x.abs();
    let s = if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Nanoseconds for people.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "n/a".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A byte count for people (`16MiB`, `1GiB`).
pub fn fmt_bytes(b: u64) -> String {
    crate::mm::system::ByteSize(b).to_string()
}

fn format_value(v: &Value, f: Format) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            match f {
                Format::Text => n.to_string(),
                Format::Int => n.to_string(),
                Format::Bytes => n.as_u64().map_or_else(|| n.to_string(), fmt_bytes),
                Format::Nanos => fmt_ns(x),
                Format::Float => format!("{x:.2}"),
            }
        }
        other => other.to_string(),
    }
}

/// Aligned columns: a header line, a rule, one line per row; columns whose
/// `right` flag is set are right aligned. Every line starts with two spaces.
pub fn table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::from(" ");
        for (i, c) in cells.enumerate().take(n) {
            let pad = width[i].saturating_sub(c.chars().count());
            s.push(' ');
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut o = line(&mut headers.iter().copied());
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    o.push_str(&line(&mut rule.iter().map(String::as_str)));
    for r in rows {
        o.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    o
}

/// Host memory the kernel says is available (`MemAvailable`), if known.
pub fn host_mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN]), None);
        assert_eq!(median_u64(&[]), None);
        assert_eq!(median_u64(&[9, 1, 5, 7, 3]), Some(5));
        assert_eq!(median_u64(&[1, 2, 3, 4]), Some(2));
        assert_eq!(median_u64(&[1, 4, 3, 2, 100, 0]), Some(2));
        assert_eq!(median_u64(&[3, 5]), Some(4));
        assert_eq!(median_u64(&[u64::MAX, u64::MAX]), Some(u64::MAX));
        // An outlier does not move it.
        assert_eq!(median_u64(&[10, 11, 12, 13, 1_000_000]), Some(12));
    }

    #[test]
    fn at_least_verdicts() {
        let t = Comparison::AtLeast(20.0);
        let p = Some(t.relaxed(PARTIAL_FRACTION));
        assert_eq!(p, Some(Comparison::AtLeast(10.0)));
        assert_eq!(verdict_of(25.0, t, p), Verdict::Reproduced);
        assert_eq!(verdict_of(20.0, t, p), Verdict::Reproduced);
        assert_eq!(verdict_of(19.9, t, p), Verdict::Partial);
        assert_eq!(verdict_of(10.0, t, p), Verdict::Partial);
        assert_eq!(verdict_of(9.99, t, p), Verdict::Refuted);
        assert_eq!(verdict_of(19.9, t, None), Verdict::Refuted);
        assert_eq!(verdict_of(f64::NAN, t, p), Verdict::Refuted);
        assert_eq!(verdict_of(f64::INFINITY, t, p), Verdict::Refuted);
    }

    #[test]
    fn at_most_and_within_verdicts() {
        let t = Comparison::AtMost(1.0);
        let p = Some(t.relaxed(0.5));
        assert_eq!(p, Some(Comparison::AtMost(2.0)));
        assert_eq!(verdict_of(0.5, t, p), Verdict::Reproduced);
        assert_eq!(verdict_of(1.5, t, p), Verdict::Partial);
        assert_eq!(verdict_of(2.5, t, p), Verdict::Refuted);
        let w = Comparison::Within(0.5, 2.0);
        let pw = Some(w.relaxed(0.5));
        assert_eq!(pw, Some(Comparison::Within(0.25, 4.0)));
        assert_eq!(verdict_of(1.0, w, pw), Verdict::Reproduced);
        assert_eq!(verdict_of(0.5, w, pw), Verdict::Reproduced);
        assert_eq!(verdict_of(3.0, w, pw), Verdict::Partial);
        assert_eq!(verdict_of(0.3, w, pw), Verdict::Partial);
        assert_eq!(verdict_of(0.1, w, pw), Verdict::Refuted);
        assert_eq!(verdict_of(5.0, w, pw), Verdict::Refuted);
    }

    #[test]
    fn requirements_combine() {
        use Verdict::*;
        assert_eq!(combine(Reproduced, []), Reproduced);
        assert_eq!(combine(Reproduced, [Reproduced, Reproduced]), Reproduced);
        assert_eq!(combine(Reproduced, [Reproduced, Refuted]), Partial);
        assert_eq!(combine(Reproduced, [Partial]), Partial);
        assert_eq!(combine(Partial, [Reproduced]), Partial);
        assert_eq!(combine(Refuted, [Reproduced]), Refuted);

        let c = Claim::new("003", "x", "m", 30.0, Comparison::AtLeast(20.0));
        assert_eq!(c.verdict(), Reproduced);
        let c = c.requires(Check::new("side", 0.0, Comparison::AtLeast(1.0)));
        assert_eq!(c.verdict(), Partial);
        let c = Claim::new("003", "x", "m", 12.0, Comparison::AtLeast(20.0));
        assert_eq!(c.verdict(), Partial);
        let c = Claim::exact("003", "x", "m", 12.0, Comparison::AtLeast(20.0));
        assert_eq!(c.verdict(), Refuted);
    }

    #[test]
    fn claim_json_shape() {
        let c = Claim::new("000", "eager", "ratio", 1.2, Comparison::Within(0.5, 2.0)).requires(Check::new(
            "eager fork / cow fork",
            3.0,
            Comparison::AtLeast(1.0),
        ));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["seed"], "000");
        assert_eq!(v["claim"], "eager");
        assert_eq!(v["metric"], "ratio");
        assert_eq!(v["measured"], 1.2);
        assert_eq!(v["rule"], "within");
        assert_eq!(v["threshold"], serde_json::json!([0.5, 2.0]));
        assert_eq!(v["partial"], serde_json::json!([0.25, 4.0]));
        assert_eq!(v["verdict"], "reproduced");
        assert_eq!(v["requires"][0]["rule"], "at_least");
        assert_eq!(v["requires"][0]["threshold"], 1.0);
        assert_eq!(v["requires"][0]["partial"], Value::Null);
        assert_eq!(v["requires"][0]["verdict"], "reproduced");
        let nan = Claim::new("003", "x", "m", f64::NAN, Comparison::AtLeast(1.0));
        let v = serde_json::to_value(&nan).unwrap();
        assert_eq!(v["measured"], Value::Null);
        assert_eq!(v["verdict"], "refuted");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["policy", "fork"],
            &[false, true],
            &[
                vec!["cow".into(), "12.5 ms".into()],
                vec!["shared_pt".into(), "3 µs".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "  policy       fork");
        assert_eq!(lines[1], "  --------- -------");
        assert_eq!(lines[2], "  cow       12.5 ms");
        assert_eq!(lines[3], "  shared_pt    3 µs");
    }

    #[test]
    fn human_numbers() {
        assert_eq!(fmt_ns(812.0), "812 ns");
        assert_eq!(fmt_ns(3_410.0), "3.41 µs");
        assert_eq!(fmt_ns(12_700_000.0), "12.70 ms");
        assert_eq!(fmt_bytes(1 << 30), "1GiB");
        assert_eq!(short(20.0), "20");
        assert_eq!(short(171.666), "171.7");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(5.30), "5.3");
        assert_eq!(short(0.982), "0.982");
        assert!(ratio(1.0, 0.0).is_nan());
    }
}
