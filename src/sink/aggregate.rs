//! Sums and distributions of counter and histogram points, shared by the sinks that aggregate
//! them: the OTLP sink (the observations of one event) and the Cloud Monitoring sink (the
//! observations of the whole process).

use std::fmt;

use super::{Point, PointKind};

/// Histogram bucket boundaries, in seconds: every histogram of the function is a time (run and
/// task durations, queue waits, schedule delays, CDC lag), from milliseconds (lag of a healthy
/// stream) to a day (a long run). 21 boundaries, so 22 buckets. Both backends write the same
/// boundaries; they differ only in which side of a boundary is inclusive ([`BucketRule`]).
pub const SECONDS_BOUNDS: [f64; 21] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
    14400.0, 28800.0, 86400.0,
];

/// Which side of a bucket boundary is inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketRule {
    /// OpenTelemetry: bucket `i` holds `bounds[i-1] < x <= bounds[i]` ("Histogram: Bucket
    /// inclusivity", metrics data model).
    UpperInclusive,
    /// Cloud Monitoring: bucket `i` (0 < i < N) holds `bounds[i-1] <= x < bounds[i]`
    /// (`google.api.Distribution.BucketOptions.Explicit`).
    LowerInclusive,
}

impl BucketRule {
    /// The bucket of `x` among `bounds.len() + 1` buckets.
    pub fn index(self, bounds: &[f64], x: f64) -> usize {
        match self {
            BucketRule::UpperInclusive => bounds.partition_point(|b| *b < x),
            BucketRule::LowerInclusive => bounds.partition_point(|b| *b <= x),
        }
    }
}

/// The observations of one histogram series: count, sum, sum of squares, extremes and bucket
/// counts over [`SECONDS_BOUNDS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub count: u64,
    pub sum: f64,
    /// Σ x², for the sum of squared deviations (Cloud Monitoring) and for subtracting one
    /// distribution from another.
    pub sum_sq: f64,
    pub min: f64,
    pub max: f64,
    /// `SECONDS_BOUNDS.len() + 1` counts.
    pub buckets: Vec<u64>,
}

impl Distribution {
    /// No observation yet.
    pub fn empty() -> Distribution {
        Distribution {
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: vec![0; SECONDS_BOUNDS.len() + 1],
        }
    }

    /// Adds one (finite) observation.
    pub fn observe(&mut self, rule: BucketRule, x: f64) {
        self.count += 1;
        self.sum += x;
        self.sum_sq += x * x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.buckets[rule.index(&SECONDS_BOUNDS, x)] += 1;
    }

    /// The mean (0 without observations, as Cloud Monitoring requires).
    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum / self.count as f64 }
    }

    /// Σ (x − mean)², never negative.
    pub fn sum_of_squared_deviation(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        (self.sum_sq - self.sum * self.sum / self.count as f64).max(0.0)
    }

    /// The observations of `self` that are not in `base` (an earlier state of the same series).
    /// The extremes stay those of `self`: they cannot be taken apart.
    pub fn minus(&self, base: &Distribution) -> Distribution {
        Distribution {
            count: self.count - base.count.min(self.count),
            sum: self.sum - base.sum,
            sum_sq: (self.sum_sq - base.sum_sq).max(0.0),
            min: self.min,
            max: self.max,
            buckets: self.buckets.iter().zip(&base.buckets).map(|(a, b)| a - b.min(a)).collect(),
        }
    }
}

/// One series: project, metric name and labels (the monitored resource or OTLP resource is
/// the sink's own).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub project: String,
    pub name: String,
    pub kind: PointKind,
    pub labels: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn of(p: &Point) -> SeriesKey {
        SeriesKey {
            project: p.project.clone(),
            name: p.name.clone(),
            kind: p.kind,
            labels: p.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{}{{{}}}", self.name, labels.join(","))
    }
}

/// Whether a counter or histogram point can be aggregated: a finite value, and no negative
/// increment of a (monotonic) counter. Such points cannot be summed and are refused by the
/// aggregating sinks.
pub fn aggregable(p: &Point) -> bool {
    p.value.is_finite() && !(p.kind == PointKind::Counter && p.value < 0.0)
}

/// Whether a counter's unit counts things (a UCUM annotation such as `{run}` or `{task}`): its
/// increments are whole, and the backends get integers (OTLP `as_int`, Cloud Monitoring
/// `INT64`). Other counters are doubles.
pub fn whole_count(unit: &str) -> bool {
    unit.len() > 2 && unit.starts_with('{') && unit.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (x, bucket under the OpenTelemetry rule, bucket under the Cloud Monitoring rule)
    #[test]
    fn bucket_inclusivity_per_backend() {
        let table: &[(f64, usize, usize)] = &[
            (0.0, 0, 0),
            (0.005, 0, 0),
            (0.01, 0, 1), // on the first boundary: last of bucket 0 (OTel), first of 1 (GCM)
            (0.02, 1, 1),
            (1.0, 5, 6), // on a boundary
            (1.5, 6, 6),
            (29.3, 9, 9),
            (86400.0, 20, 21),
            (90000.0, 21, 21), // overflow bucket
        ];
        for &(x, otel, gcm) in table {
            assert_eq!(BucketRule::UpperInclusive.index(&SECONDS_BOUNDS, x), otel, "OTel {x}");
            assert_eq!(BucketRule::LowerInclusive.index(&SECONDS_BOUNDS, x), gcm, "GCM {x}");
        }
    }

    #[test]
    fn distribution_statistics_and_difference() {
        let mut d = Distribution::empty();
        assert_eq!((d.mean(), d.sum_of_squared_deviation()), (0.0, 0.0));
        for x in [1.0, 2.0, 3.0] {
            d.observe(BucketRule::LowerInclusive, x);
        }
        let base = d.clone();
        assert_eq!((d.count, d.sum, d.min, d.max), (3, 6.0, 1.0, 3.0));
        assert_eq!(d.mean(), 2.0);
        assert_eq!(d.sum_of_squared_deviation(), 2.0);
        d.observe(BucketRule::LowerInclusive, 100.0);
        let later = d.minus(&base);
        assert_eq!((later.count, later.sum, later.mean()), (1, 100.0, 100.0));
        assert_eq!(later.sum_of_squared_deviation(), 0.0);
        assert_eq!(later.buckets.iter().sum::<u64>(), 1);
        assert_eq!(later.buckets[BucketRule::LowerInclusive.index(&SECONDS_BOUNDS, 100.0)], 1);
    }

    #[test]
    fn what_can_be_aggregated_and_counted_whole() {
        let t = chrono::Utc::now();
        let c = |v: f64| Point::counter("c", v, "{run}", t, Default::default(), "p");
        let h = |v: f64| Point::histogram("h", v, "s", t, Default::default(), "p");
        let table = [
            (c(1.0), true),
            (c(0.0), true),
            (c(-1.0), false),
            (c(f64::NAN), false),
            (h(-1.0), true),
            (h(f64::INFINITY), false),
            (h(0.5), true),
        ];
        for (p, ok) in table {
            assert_eq!(aggregable(&p), ok, "{p:?}");
        }
        for (unit, whole) in [("{run}", true), ("{task}", true), ("{}", false), ("1", false), ("s", false), ("", false)]
        {
            assert_eq!(whole_count(unit), whole, "{unit}");
        }
    }
}
