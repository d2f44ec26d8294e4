use super::*;
use chrono::TimeZone;

#[test]
fn isoformat_like_python() {
    let t = Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap() + chrono::Duration::milliseconds(393);
    assert_eq!(python_isoformat(&t), "2025-11-05T18:23:31.393000+00:00");
    let t = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap();
    assert_eq!(python_isoformat(&t), "2024-01-15T10:30:00+00:00");
    let t = t + chrono::Duration::microseconds(7);
    assert_eq!(python_isoformat(&t), "2024-01-15T10:30:00.000007+00:00");
    // nanoseconds below a microsecond are dropped, as Python has none
    let t = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap() + chrono::Duration::nanoseconds(999);
    assert_eq!(python_isoformat(&t), "2024-01-15T10:30:00+00:00");
    let t = Utc.with_ymd_and_hms(12, 3, 4, 5, 6, 7).unwrap();
    assert_eq!(python_isoformat(&t), "0012-03-04T05:06:07+00:00");
}

#[tokio::test]
async fn json_line_has_reference_fields_in_order() {
    let buf = SharedBuffer::default();
    let sink = JsonLines::new(buf.clone());
    let g = Point::gauge(
        "claims/pipeline/filtered_pre/vl_pago/relative",
        1500.0 / 9500.0,
        Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap(),
        BTreeMap::from([("partner".into(), "abertta".into()), ("approved".into(), "false".into())]),
        "local-project",
    );
    let d = sink.emit(&[g.clone(), Point { value: 1500.0, ..g }]).await;
    assert_eq!(d.result(), Ok(()));
    assert_eq!(d.calls, 1);
    let lines = buf.take_lines();
    assert_eq!(
        lines,
        vec![
            r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"local-project","name":"claims/pipeline/filtered_pre/vl_pago/relative","value":0.15789473684210525,"labels":{"approved":"false","partner":"abertta"},"timestamp":"2025-11-05T18:23:31+00:00"}"#,
            r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"local-project","name":"claims/pipeline/filtered_pre/vl_pago/relative","value":1500.0,"labels":{"approved":"false","partner":"abertta"},"timestamp":"2025-11-05T18:23:31+00:00"}"#,
        ]
    );
}

/// (point, `json` line, `emf` line in namespace `ns`): every kind in both formats.
#[test]
fn every_kind_in_both_formats() {
    let t = Utc.with_ymd_and_hms(2025, 11, 5, 18, 23, 31).unwrap() + chrono::Duration::milliseconds(393);
    let labels = BTreeMap::from([
        ("pipeline".to_string(), "etl".to_string()),
        ("result".to_string(), "success".to_string()),
        ("status".to_string(), String::new()),
    ]);
    let table: Vec<(Point, &str, &str)> = vec![
        (
            Point::counter("pipeline.run.finished", 1.0, "{run}", t, labels.clone(), "p"),
            r#"{"severity":"INFO","message":"METRIC","metric_type":"counter","project_id":"p","name":"pipeline.run.finished","value":1.0,"unit":"{run}","labels":{"pipeline":"etl","result":"success","status":""},"timestamp":"2025-11-05T18:23:31.393000+00:00"}"#,
            r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["pipeline","result"]],"Metrics":[{"Name":"pipeline.run.finished","Unit":"Count"}],"Namespace":"ns"}],"Timestamp":1762367011393},"pipeline":"etl","result":"success","pipeline.run.finished":1.0}"#,
        ),
        (
            Point::histogram("pipeline.run.duration", 205.489, "s", t, labels.clone(), "p"),
            r#"{"severity":"INFO","message":"METRIC","metric_type":"histogram","project_id":"p","name":"pipeline.run.duration","value":205.489,"unit":"s","labels":{"pipeline":"etl","result":"success","status":""},"timestamp":"2025-11-05T18:23:31.393000+00:00"}"#,
            r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["pipeline","result"]],"Metrics":[{"Name":"pipeline.run.duration","Unit":"Seconds"}],"Namespace":"ns"}],"Timestamp":1762367011393},"pipeline":"etl","result":"success","pipeline.run.duration":205.489}"#,
        ),
        (
            Point::gauge(
                "claims/pipeline/filtered_pre/vl_pago/total",
                1500.0,
                t,
                BTreeMap::from([("partner".into(), "abertta".into())]),
                "p",
            ),
            r#"{"severity":"INFO","message":"METRIC","metric_type":"gauge","project_id":"p","name":"claims/pipeline/filtered_pre/vl_pago/total","value":1500.0,"labels":{"partner":"abertta"},"timestamp":"2025-11-05T18:23:31.393000+00:00"}"#,
            r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["partner"]],"Metrics":[{"Name":"claims/pipeline/filtered_pre/vl_pago/total","Unit":"None"}],"Namespace":"ns"}],"Timestamp":1762367011393},"partner":"abertta","claims/pipeline/filtered_pre/vl_pago/total":1500.0}"#,
        ),
        (
            // no labels: an empty dimension set; a label named like the metric stays out
            Point::counter(
                "pipeline.task.retried",
                1.0,
                "{task}",
                t,
                BTreeMap::from([("pipeline.task.retried".into(), "x".into())]),
                "p",
            ),
            r#"{"severity":"INFO","message":"METRIC","metric_type":"counter","project_id":"p","name":"pipeline.task.retried","value":1.0,"unit":"{task}","labels":{"pipeline.task.retried":"x"},"timestamp":"2025-11-05T18:23:31.393000+00:00"}"#,
            r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"pipeline.task.retried","Unit":"Count"}],"Namespace":"ns"}],"Timestamp":1762367011393},"pipeline.task.retried":1.0}"#,
        ),
    ];
    let emf = LineFormat::Emf { namespace: "ns".into() };
    for (p, json, emf_want) in table {
        assert_eq!(metric_line(&p), json);
        assert_eq!(LineFormat::Json.line(&p), json);
        assert_eq!(emf.line(&p), emf_want);
        let v: serde_json::Value = serde_json::from_str(&emf.line(&p)).unwrap();
        assert_eq!(v[&p.name], p.value, "the value sits under the metric name");
    }
}

#[test]
fn ucum_units_map_to_cloudwatch_units() {
    let table = [
        ("s", "Seconds"),
        ("ms", "Milliseconds"),
        ("us", "Microseconds"),
        ("By", "Bytes"),
        ("%", "Percent"),
        ("1", "Count"),
        ("{run}", "Count"),
        ("{task}", "Count"),
        ("{record}", "Count"),
        ("", "None"),
        ("{}", "None"),
        ("min", "None"),
    ];
    for (ucum, cw) in table {
        assert_eq!(cloudwatch_unit(ucum), cw, "{ucum}");
    }
}

#[test]
fn at_most_30_dimensions() {
    let labels: BTreeMap<String, String> = (0..40).map(|i| (format!("k{i:02}"), "v".to_string())).collect();
    let p = Point::gauge("g", 1.0, Utc::now(), labels, "p");
    let v: serde_json::Value = serde_json::from_str(&emf_line(&p, "ns")).unwrap();
    assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].as_array().unwrap().len(), 30);
    assert!(v.get("k29").is_some() && v.get("k30").is_none());
}

#[tokio::test]
async fn the_sink_prints_emf_lines_when_asked() {
    let buf = SharedBuffer::default();
    let sink = JsonLines::with_format(buf.clone(), LineFormat::Emf { namespace: "pipeline-run-metrics".into() });
    let t = Utc.with_ymd_and_hms(2026, 11, 30, 13, 30, 29).unwrap();
    let c = Point::counter("pipeline.run.started", 1.0, "{run}", t, BTreeMap::new(), "p");
    let d = sink.emit(&[c.clone(), c]).await;
    assert_eq!((d.result(), d.calls), (Ok(()), 1));
    let line = r#"{"_aws":{"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"pipeline.run.started","Unit":"Count"}],"Namespace":"pipeline-run-metrics"}],"Timestamp":1796045429000},"pipeline.run.started":1.0}"#;
    assert_eq!(buf.take_lines(), vec![line, line], "one line per increment");
}
