//! Measurement primitives shared by every scenario: per-stream sequence
//! checking ([`SeqChecker`], [`OrderChecker`]), latency histograms
//! ([`Latency`]) and labelled counts ([`Tally`], used for close codes and
//! error kinds).
//!
//! All of these are plain single-owner values: a connection task owns its own
//! and the scenario merges them at the end, so the hot path touches no shared
//! memory.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Checks one stream of sequence numbers `0..expected` for loss, duplicates
/// and reordering.
///
/// The common case, the next number in order, costs one comparison. The first
/// time anything else arrives the checker switches to a bitmap of seen
/// numbers, so the final counts are exact whatever the pattern:
///
/// * **duplicate**: a number already seen;
/// * **reorder**: a number not seen before that arrives after a higher one;
/// * **lost**: a number in `0..expected` never seen (known only at the end);
/// * **out of range**: a number `>= expected`.
#[derive(Debug, Clone)]
pub struct SeqChecker {
    expected: u64,
    /// In-order mode: every number below `next` was seen exactly once.
    next: u64,
    /// Set on the first anomaly; bit `n` is set once `n` was seen.
    seen: Option<Vec<u64>>,
    highest: u64,
    unique: u64,
    duplicates: u64,
    reorders: u64,
    out_of_range: u64,
}

/// The result of a [`SeqChecker`] (or the sum of several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeqSummary {
    /// Numbers the stream should have delivered.
    pub expected: u64,
    /// Distinct numbers delivered.
    pub received: u64,
    /// Numbers never delivered.
    pub lost: u64,
    /// Deliveries of a number already delivered.
    pub duplicates: u64,
    /// First deliveries that came after a higher number.
    pub reorders: u64,
    /// Deliveries of a number outside `0..expected`.
    pub out_of_range: u64,
}

impl SeqSummary {
    /// Adds another summary's counts to this one.
    pub fn add(&mut self, other: &SeqSummary) {
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.reorders += other.reorders;
        self.out_of_range += other.out_of_range;
    }

    /// True when everything expected arrived exactly once and in order.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.reorders == 0 && self.out_of_range == 0
    }
}

impl SeqChecker {
    /// A checker expecting `0..expected`.
    pub fn new(expected: u64) -> Self {
        Self {
            expected,
            next: 0,
            seen: None,
            highest: 0,
            unique: 0,
            duplicates: 0,
            reorders: 0,
            out_of_range: 0,
        }
    }

    /// Records the delivery of `seq`.
    #[inline]
    pub fn observe(&mut self, seq: u64) {
        if self.seen.is_none() && seq == self.next && seq < self.expected {
            self.next += 1;
            self.unique += 1;
            return;
        }
        self.observe_slow(seq);
    }

    #[cold]
    fn observe_slow(&mut self, seq: u64) {
        if seq >= self.expected {
            self.out_of_range += 1;
            return;
        }
        let seen = match &mut self.seen {
            None if seq < self.next => {
                // In order so far, and everything below `next` was seen once.
                self.duplicates += 1;
                return;
            }
            None => {
                // A gap: from here on track every number.
                let words = usize::try_from(self.expected.div_ceil(64)).unwrap_or(usize::MAX);
                let mut bits = vec![0u64; words];
                for n in 0..self.next {
                    set_bit(&mut bits, n);
                }
                self.highest = self.next.saturating_sub(1);
                self.seen.insert(bits)
            }
            Some(bits) => bits,
        };
        if get_bit(seen, seq) {
            self.duplicates += 1;
            return;
        }
        set_bit(seen, seq);
        self.unique += 1;
        if self.unique > 1 && seq < self.highest {
            self.reorders += 1;
        }
        self.highest = self.highest.max(seq);
    }

    /// True once every number in `0..expected` has been seen.
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.unique == self.expected
    }

    /// The counts so far; `lost` counts what has not arrived yet.
    pub fn summary(&self) -> SeqSummary {
        SeqSummary {
            expected: self.expected,
            received: self.unique,
            lost: self.expected - self.unique,
            duplicates: self.duplicates,
            reorders: self.reorders,
            out_of_range: self.out_of_range,
        }
    }
}

fn set_bit(bits: &mut [u64], n: u64) {
    if let Some(word) = usize::try_from(n / 64).ok().and_then(|i| bits.get_mut(i)) {
        *word |= 1 << (n % 64);
    }
}

fn get_bit(bits: &[u64], n: u64) -> bool {
    usize::try_from(n / 64)
        .ok()
        .and_then(|i| bits.get(i))
        .is_some_and(|word| word & (1 << (n % 64)) != 0)
}

/// Sequence checking over several independent streams (one per publisher
/// connection), each numbered from 0.
#[derive(Debug, Clone)]
pub struct OrderChecker {
    streams: Vec<SeqChecker>,
    remaining: u64,
    unknown_stream: u64,
}

impl OrderChecker {
    /// A checker for `messages` numbered `0..messages` split round-robin over
    /// `streams` streams: message `j` is number `j / streams` of stream
    /// `j % streams` (see [`stream_split`]).
    pub fn new(messages: u64, streams: u16) -> Self {
        let streams: Vec<SeqChecker> = (0..streams)
            .map(|s| SeqChecker::new(stream_split(messages, streams, s)))
            .collect();
        Self {
            remaining: messages,
            streams,
            unknown_stream: 0,
        }
    }

    /// Records the delivery of `seq` on `stream`.
    #[inline]
    pub fn observe(&mut self, stream: u16, seq: u32) {
        match self.streams.get_mut(usize::from(stream)) {
            Some(checker) => {
                let before = checker.unique;
                checker.observe(u64::from(seq));
                self.remaining -= checker.unique - before;
            }
            None => self.unknown_stream += 1,
        }
    }

    /// True once every stream is complete.
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// The counts of all streams added up; deliveries on an unknown stream
    /// count as out of range.
    pub fn summary(&self) -> SeqSummary {
        let mut total = SeqSummary {
            out_of_range: self.unknown_stream,
            ..SeqSummary::default()
        };
        for stream in &self.streams {
            total.add(&stream.summary());
        }
        total
    }
}

/// How many of `messages` fall on `stream` when they are dealt round-robin
/// over `streams` streams.
pub fn stream_split(messages: u64, streams: u16, stream: u16) -> u64 {
    let streams = u64::from(streams.max(1));
    let stream = u64::from(stream);
    messages / streams + u64::from(stream < messages % streams)
}

/// A latency histogram in microseconds (1 µs to 60 s; larger values are
/// clamped to 60 s).
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// Largest recordable latency in microseconds.
const LATENCY_MAX_US: u64 = 60_000_000;

impl Latency {
    /// A histogram with 3 significant digits, for one per scenario.
    pub fn precise() -> Self {
        Self::with_sigfig(3)
    }

    /// A histogram with 2 significant digits (about 20 KB instead of 140 KB),
    /// for one per connection when there are thousands.
    pub fn compact() -> Self {
        Self::with_sigfig(2)
    }

    fn with_sigfig(sigfig: u8) -> Self {
        let hist = Histogram::new_with_bounds(1, LATENCY_MAX_US, sigfig)
            .expect("constant histogram bounds are valid");
        Self { hist }
    }

    /// Records one latency in microseconds.
    #[inline]
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, LATENCY_MAX_US));
    }

    /// Records one latency in nanoseconds.
    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        self.record_us(ns / 1_000);
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every value of `other` to this histogram.
    pub fn merge(&mut self, other: &Latency) {
        for value in other.hist.iter_recorded() {
            self.hist
                .saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The percentiles the reports print.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.hist;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Percentiles of a [`Latency`], in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample (within the histogram's precision).
    pub max_us: u64,
}

/// Counts by label, such as close codes (`"1013"`) or error kinds
/// (`"connect: connection refused"`). Serializes as a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tally(BTreeMap<String, u64>);

impl Tally {
    /// Adds one under `label`.
    pub fn add(&mut self, label: impl Into<String>) {
        self.add_n(label, 1);
    }

    /// Adds `n` under `label`.
    pub fn add_n(&mut self, label: impl Into<String>, n: u64) {
        *self.0.entry(label.into()).or_default() += n;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Tally) {
        for (label, n) in &other.0 {
            self.add_n(label.clone(), *n);
        }
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Labels and counts, in label order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(label, n)| (label.as_str(), *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: u64, seqs: &[u64]) -> SeqSummary {
        let mut checker = SeqChecker::new(expected);
        for &seq in seqs {
            checker.observe(seq);
        }
        checker.summary()
    }

    /// received, lost, duplicates, reorders, out of range
    type Counts = (u64, u64, u64, u64, u64);

    fn summary(received: u64, lost: u64, dup: u64, reord: u64, oor: u64) -> Counts {
        (received, lost, dup, reord, oor)
    }

    fn tuple(s: SeqSummary) -> Counts {
        (s.received, s.lost, s.duplicates, s.reorders, s.out_of_range)
    }

    #[test]
    fn sequence_table() {
        let cases: &[(&str, u64, &[u64], Counts)] = &[
            ("in order", 4, &[0, 1, 2, 3], summary(4, 0, 0, 0, 0)),
            ("empty", 3, &[], summary(0, 3, 0, 0, 0)),
            ("tail lost", 4, &[0, 1], summary(2, 2, 0, 0, 0)),
            ("gap lost", 4, &[0, 1, 3], summary(3, 1, 0, 0, 0)),
            ("head lost", 3, &[1, 2], summary(2, 1, 0, 0, 0)),
            (
                "duplicate in order",
                3,
                &[0, 1, 1, 2],
                summary(3, 0, 1, 0, 0),
            ),
            (
                "duplicate after gap",
                4,
                &[0, 2, 2, 1, 3],
                summary(4, 0, 1, 1, 0),
            ),
            ("swap", 4, &[0, 2, 1, 3], summary(4, 0, 0, 1, 0)),
            ("reversed", 4, &[3, 2, 1, 0], summary(4, 0, 0, 3, 0)),
            ("late and lost", 5, &[0, 3, 1, 4], summary(4, 1, 0, 1, 0)),
            ("out of range", 2, &[0, 1, 2, 7], summary(2, 0, 0, 0, 2)),
            (
                "old duplicate after gap",
                4,
                &[0, 1, 3, 0],
                summary(3, 1, 1, 0, 0),
            ),
            ("wide", 200, &[0, 150, 1], summary(3, 197, 0, 1, 0)),
        ];
        for (name, expected, seqs, want) in cases {
            assert_eq!(tuple(check(*expected, seqs)), *want, "{name}");
        }
    }

    #[test]
    fn complete_only_when_all_seen() {
        let mut checker = SeqChecker::new(3);
        checker.observe(0);
        checker.observe(2);
        assert!(!checker.is_complete());
        checker.observe(1);
        assert!(checker.is_complete());
        assert!(!checker.summary().is_clean());
        assert_eq!(checker.summary().reorders, 1);
    }

    #[test]
    fn order_checker_over_streams() {
        // 7 messages over 3 streams: stream 0 gets 3, streams 1 and 2 get 2.
        assert_eq!(stream_split(7, 3, 0), 3);
        assert_eq!(stream_split(7, 3, 1), 2);
        assert_eq!(stream_split(7, 3, 2), 2);
        let mut checker = OrderChecker::new(7, 3);
        for (stream, seq) in [(0, 0), (1, 0), (2, 0), (1, 1), (0, 1), (2, 1)] {
            checker.observe(stream, seq);
        }
        assert!(!checker.is_complete());
        checker.observe(0, 2);
        assert!(checker.is_complete());
        assert!(checker.summary().is_clean());
        checker.observe(5, 0);
        checker.observe(0, 2);
        let s = checker.summary();
        assert_eq!(
            (s.expected, s.received, s.out_of_range, s.duplicates),
            (7, 7, 1, 1)
        );
    }

    #[test]
    fn latency_percentiles_and_merge() {
        let mut a = Latency::compact();
        for us in 1..=1000 {
            a.record_us(us);
        }
        let mut total = Latency::precise();
        total.merge(&a);
        total.record(Duration::from_secs(120));
        let s = total.summary();
        assert_eq!(s.count, 1001);
        assert!((495..=505).contains(&s.p50_us), "{s:?}");
        assert!((985..=1000).contains(&s.p99_us), "{s:?}");
        assert!(s.max_us >= 59_000_000, "clamped to 60 s: {s:?}");
        assert_eq!(Latency::compact().summary(), LatencySummary::default());
    }

    #[test]
    fn tally_counts_and_merges() {
        let mut a = Tally::default();
        a.add("1013");
        a.add("1013");
        let mut b = Tally::default();
        b.add("eof");
        b.merge(&a);
        assert_eq!(b.total(), 3);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![("1013", 2), ("eof", 1)]);
        assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"1013":2,"eof":1}"#);
    }
}
