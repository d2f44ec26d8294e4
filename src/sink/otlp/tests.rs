use super::*;
use crate::sink::aggregate::{BucketRule, Distribution, SECONDS_BOUNDS};
use chrono::TimeZone;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum, metric, number_data_point,
};
use request::gauge;

#[test]
fn request_carries_explicit_times_and_labels() {
    let g = Point::gauge(
        "claims/pipeline/filtered_pre/vl_pago/total",
        1500.0,
        chrono::Utc.timestamp_opt(1_767_323_045, 123_000_000).unwrap(),
        [("partner".to_string(), "abertta".to_string())].into_iter().collect(),
        "p",
    );
    let identity = Identity { service_name: "svc".into(), instance_id: "i-1".into() };
    let last = HashMap::new();
    let points = [g];
    let (req, deltas, refused) = request(&points, &identity, DeltaTimes { now: 9, process_start: 1, last: &last });
    assert!(deltas.is_empty() && refused.is_empty());
    let rm = &req.resource_metrics[0];
    assert_eq!(
        rm.resource.as_ref().unwrap().attributes,
        vec![kv("service.name", "svc"), kv("service.instance.id", "i-1"), kv("gcp.project_id", "p")]
    );
    let m = &rm.scope_metrics[0].metrics[0];
    assert_eq!(m.name, "claims/pipeline/filtered_pre/vl_pago/total");
    let Some(metric::Data::Gauge(gauge)) = &m.data else { panic!("gauge") };
    assert_eq!(gauge.data_points[0].time_unix_nano, 1_767_323_045_123_000_000);
    assert_eq!(gauge.data_points[0].start_time_unix_nano, 0, "a gauge has no start");
    assert_eq!(gauge.data_points[0].value, Some(number_data_point::Value::AsDouble(1500.0)));
    assert_eq!(gauge.data_points[0].attributes, vec![kv("partner", "abertta")]);
}

fn labels(pairs: &[(&str, &str)]) -> crate::sink::Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// (the event's points, the metrics of the request): every kind, with aggregation of one
/// series' points, first-seen order, whole and double counters, and the refused points.
#[test]
fn every_kind_encodes_as_its_otlp_metric() {
    let t = chrono::Utc.timestamp_opt(1_796_045_429, 0).unwrap();
    let a = labels(&[("pipeline", "a")]);
    let b = labels(&[("pipeline", "b")]);
    let delta = AggregationTemporality::Delta as i32;
    let number = |l: &crate::sink::Labels, start: u64, v: number_data_point::Value| NumberDataPoint {
        attributes: l.iter().map(|(k, v)| kv(k, v)).collect(),
        start_time_unix_nano: start,
        time_unix_nano: 100,
        value: Some(v),
        ..Default::default()
    };
    let buckets = |xs: &[f64]| {
        let mut d = Distribution::empty();
        xs.iter().for_each(|x| d.observe(BucketRule::UpperInclusive, *x));
        d.buckets
    };
    let (b1, b2) = (buckets(&[1.0, 30.0, 0.5]), buckets(&[7.0]));
    assert_eq!((b1[4], b1[5]), (1, 1), "upper-inclusive: 0.5 closes (0.25, 0.5], 1.0 closes (0.5, 1]");
    let table: Vec<(Vec<Point>, Vec<Metric>)> = vec![
        (
            vec![
                Point::counter("pipeline.run.finished", 1.0, "{run}", t, a.clone(), "p"),
                Point::counter("pipeline.run.finished", 1.0, "{run}", t, b.clone(), "p"),
                Point::counter("pipeline.run.finished", 1.0, "{run}", t, a.clone(), "p"),
                Point::counter("bytes.sent", 2.5, "By", t, a.clone(), "p"),
                Point::counter("pipeline.run.finished", -1.0, "{run}", t, a.clone(), "p"),
            ],
            vec![
                Metric {
                    name: "pipeline.run.finished".into(),
                    unit: "{run}".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![
                            number(&a, 7, number_data_point::Value::AsInt(2)),
                            number(&b, 1, number_data_point::Value::AsInt(1)),
                        ],
                        aggregation_temporality: delta,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                },
                Metric {
                    name: "bytes.sent".into(),
                    unit: "By".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![number(&a, 7, number_data_point::Value::AsDouble(2.5))],
                        aggregation_temporality: delta,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                },
            ],
        ),
        (
            vec![
                Point::histogram("pipeline.run.duration", 1.0, "s", t, a.clone(), "p"),
                Point::gauge("g", 3.0, t, b.clone(), "p"),
                Point::histogram("pipeline.run.duration", 30.0, "s", t, a.clone(), "p"),
                Point::histogram("pipeline.run.duration", 7.0, "s", t, b.clone(), "p"),
                Point::histogram("pipeline.run.duration", 0.5, "s", t, a.clone(), "p"),
                Point::histogram("pipeline.run.duration", f64::NAN, "s", t, a.clone(), "p"),
            ],
            vec![
                Metric {
                    name: "pipeline.run.duration".into(),
                    unit: "s".into(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: vec![
                            HistogramDataPoint {
                                attributes: vec![kv("pipeline", "a")],
                                start_time_unix_nano: 7,
                                time_unix_nano: 100,
                                count: 3,
                                sum: Some(31.5),
                                bucket_counts: b1,
                                explicit_bounds: SECONDS_BOUNDS.to_vec(),
                                min: Some(0.5),
                                max: Some(30.0),
                                ..Default::default()
                            },
                            HistogramDataPoint {
                                attributes: vec![kv("pipeline", "b")],
                                start_time_unix_nano: 1,
                                time_unix_nano: 100,
                                count: 1,
                                sum: Some(7.0),
                                bucket_counts: b2,
                                explicit_bounds: SECONDS_BOUNDS.to_vec(),
                                min: Some(7.0),
                                max: Some(7.0),
                                ..Default::default()
                            },
                        ],
                        aggregation_temporality: delta,
                    })),
                    ..Default::default()
                },
                gauge(&Point::gauge("g", 3.0, t, b.clone(), "p")),
            ],
        ),
    ];
    let identity = Identity { service_name: "svc".into(), instance_id: "i".into() };
    for (points, want) in table {
        // series (pipeline=a) of both metrics was exported before, at 7
        let mut last = HashMap::new();
        for p in &points {
            if p.labels == a {
                last.insert(SeriesKey::of(p), 7);
            }
        }
        let (req, deltas, refused) =
            request(&points, &identity, DeltaTimes { now: 100, process_start: 1, last: &last });
        assert_eq!(req.resource_metrics.len(), 1);
        assert_eq!(req.resource_metrics[0].scope_metrics[0].metrics, want);
        assert_eq!(refused.len(), 1, "the negative increment or the NaN observation");
        let n_points: usize = want
            .iter()
            .map(|m| match &m.data {
                Some(metric::Data::Sum(s)) => s.data_points.len(),
                Some(metric::Data::Histogram(h)) => h.data_points.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(deltas.len(), n_points, "every delta point's series advances on success");
    }
}

#[test]
fn one_resource_per_project_in_name_order() {
    let t = chrono::Utc::now();
    let points = [
        Point::counter("c", 1.0, "{run}", t, labels(&[]), "z-proj"),
        Point::counter("c", 1.0, "{run}", t, labels(&[]), "a-proj"),
    ];
    let identity = Identity { service_name: "svc".into(), instance_id: "i".into() };
    let last = HashMap::new();
    let (req, deltas, _) = request(&points, &identity, DeltaTimes { now: 5, process_start: 1, last: &last });
    let projects: Vec<&KeyValue> =
        req.resource_metrics.iter().map(|r| &r.resource.as_ref().unwrap().attributes[2]).collect();
    assert_eq!(projects, vec![&kv("gcp.project_id", "a-proj"), &kv("gcp.project_id", "z-proj")]);
    assert_eq!(deltas.len(), 2, "one series per project");
}

#[test]
fn headers_parse() {
    assert_eq!(
        parse_headers("api-key=a%20b, x=1").unwrap(),
        vec![("api-key".to_string(), "a b".to_string()), ("x".to_string(), "1".to_string())]
    );
    assert!(parse_headers("novalue").is_err());
    assert!(parse_headers("").unwrap().is_empty());
}
