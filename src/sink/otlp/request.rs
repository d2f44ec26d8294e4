//! The OTLP request of one event's points (see the parent module for the rules per kind and the
//! delta times): `ExportMetricsServiceRequest` from `opentelemetry-proto` messages.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::sink::aggregate::{BucketRule, Distribution, SECONDS_BOUNDS, SeriesKey, aggregable, whole_count};
use crate::sink::{Point, PointKind};

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_nanos(t: DateTime<Utc>) -> u64 {
    t.timestamp_nanos_opt().unwrap_or(0).max(0) as u64
}

/// A string attribute.
pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

/// What every request of this process says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `service.name`
    pub service_name: String,
    /// `service.instance.id`
    pub instance_id: String,
}

/// The times of the delta points of one export: `now` is every delta point's
/// `time_unix_nano`; a series' point starts at its time in `last` (its previous accepted
/// export) or, for a series not exported yet, at `process_start`.
#[derive(Debug, Clone, Copy)]
pub struct DeltaTimes<'a> {
    pub now: u64,
    pub process_start: u64,
    pub last: &'a HashMap<SeriesKey, u64>,
}

impl DeltaTimes<'_> {
    fn start(&self, key: &SeriesKey) -> u64 {
        self.last.get(key).copied().unwrap_or(self.process_start)
    }
}

/// One metric of a request under construction.
enum Building {
    Gauge(Metric),
    /// name, unit, whole counts, then per label set (first-seen order): key and sum
    Sum(String, String, bool, Vec<(SeriesKey, f64)>),
    /// name, unit, then per label set: key and distribution
    Histogram(String, String, Vec<(SeriesKey, Distribution)>),
}

/// The export request for one event's points (see the module documentation): one resource per
/// metric project (in name order), its metrics in the order their first point came. Also
/// returns the series that got a delta point (their time advances when the export is
/// accepted) and the points refused because their value cannot be summed.
pub fn request<'p>(
    points: &'p [Point],
    identity: &Identity,
    times: DeltaTimes<'_>,
) -> (ExportMetricsServiceRequest, Vec<SeriesKey>, Vec<&'p Point>) {
    let mut projects: Vec<&str> = points.iter().map(|g| g.project.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    let mut deltas = Vec::new();
    let mut refused = Vec::new();
    let resource_metrics = projects
        .into_iter()
        .map(|project| {
            let mut building: Vec<Building> = Vec::new();
            // (name, kind) -> index in `building`
            let mut index: HashMap<(&str, PointKind), usize> = HashMap::new();
            for p in points.iter().filter(|g| g.project == project) {
                if p.kind != PointKind::Gauge && !aggregable(p) {
                    refused.push(p);
                    continue;
                }
                let at = match p.kind {
                    PointKind::Gauge => None,
                    kind => index.get(&(p.name.as_str(), kind)).copied(),
                };
                let at = at.unwrap_or_else(|| {
                    building.push(match p.kind {
                        PointKind::Gauge => Building::Gauge(gauge(p)),
                        PointKind::Counter => {
                            Building::Sum(p.name.clone(), p.unit.to_string(), whole_count(&p.unit), Vec::new())
                        }
                        PointKind::Histogram => Building::Histogram(p.name.clone(), p.unit.to_string(), Vec::new()),
                    });
                    if p.kind != PointKind::Gauge {
                        index.insert((p.name.as_str(), p.kind), building.len() - 1);
                    }
                    building.len() - 1
                });
                let key = SeriesKey::of(p);
                match &mut building[at] {
                    Building::Gauge(_) => {}
                    Building::Sum(_, _, _, series) => match series.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, sum)) => *sum += p.value,
                        None => series.push((key, p.value)),
                    },
                    Building::Histogram(_, _, series) => {
                        let i = match series.iter().position(|(k, _)| *k == key) {
                            Some(i) => i,
                            None => {
                                series.push((key, Distribution::empty()));
                                series.len() - 1
                            }
                        };
                        series[i].1.observe(BucketRule::UpperInclusive, p.value);
                    }
                }
            }
            let metrics = building
                .into_iter()
                .map(|b| match b {
                    Building::Gauge(m) => m,
                    Building::Sum(name, unit, whole, series) => Metric {
                        name,
                        unit,
                        data: Some(metric::Data::Sum(Sum {
                            data_points: series
                                .into_iter()
                                .map(|(key, sum)| {
                                    let point = NumberDataPoint {
                                        attributes: attributes(&key),
                                        start_time_unix_nano: times.start(&key),
                                        time_unix_nano: times.now,
                                        value: Some(if whole {
                                            number_data_point::Value::AsInt(sum.round() as i64)
                                        } else {
                                            number_data_point::Value::AsDouble(sum)
                                        }),
                                        ..Default::default()
                                    };
                                    deltas.push(key);
                                    point
                                })
                                .collect(),
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Building::Histogram(name, unit, series) => Metric {
                        name,
                        unit,
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: series
                                .into_iter()
                                .map(|(key, d)| {
                                    let point = HistogramDataPoint {
                                        attributes: attributes(&key),
                                        start_time_unix_nano: times.start(&key),
                                        time_unix_nano: times.now,
                                        count: d.count,
                                        sum: Some(d.sum),
                                        bucket_counts: d.buckets.clone(),
                                        explicit_bounds: SECONDS_BOUNDS.to_vec(),
                                        min: Some(d.min),
                                        max: Some(d.max),
                                        ..Default::default()
                                    };
                                    deltas.push(key);
                                    point
                                })
                                .collect(),
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                        })),
                        ..Default::default()
                    },
                })
                .collect();
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", &identity.service_name),
                        kv("service.instance.id", &identity.instance_id),
                        kv("gcp.project_id", project),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "pipeline-run-metrics".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    (ExportMetricsServiceRequest { resource_metrics }, deltas, refused)
}

/// A gauge point as its own `Gauge` metric with one data point at the point's time.
pub(super) fn gauge(g: &Point) -> Metric {
    Metric {
        name: g.name.clone(),
        data: Some(metric::Data::Gauge(opentelemetry_proto::tonic::metrics::v1::Gauge {
            data_points: vec![NumberDataPoint {
                attributes: g.labels.iter().map(|(k, v)| kv(k, v)).collect(),
                time_unix_nano: unix_nanos(g.time),
                value: Some(number_data_point::Value::AsDouble(g.value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

fn attributes(key: &SeriesKey) -> Vec<KeyValue> {
    key.labels.iter().map(|(k, v)| kv(k, v)).collect()
}
