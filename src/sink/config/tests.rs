//! Tests of the sink's settings, read through the whole configuration.

use std::time::Duration;

use super::*;
use crate::config::test_config as cfg;
use crate::sink::gcm::config::GcmConfig;
use crate::sink::otlp::config::OtlpConfig;
use crate::vars::Secret;

#[test]
fn backend_settings_are_validated_when_the_backend_is_chosen() {
    let e = cfg(&[("METRICS_BACKEND", "gcm"), ("GCM_ENDPOINT", "monitoring.googleapis.com")]).unwrap_err();
    assert_eq!(e.variable, "GCM_ENDPOINT");
    let e = cfg(&[("METRICS_BACKEND", "gcm"), ("GCM_RESOURCE", "cloud_run_revision")]).unwrap_err();
    assert_eq!(e.variable, "GCM_RESOURCE");
    let e = cfg(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).unwrap_err();
    assert_eq!(e.variable, "OTEL_EXPORTER_OTLP_ENDPOINT");
}

#[test]
fn backends() {
    assert_eq!(cfg(&[]).unwrap().metrics_backend, MetricsBackend::stdout());
    // the reference's production flag selects Cloud Monitoring unless a backend is named
    let c = cfg(&[("LOCAL_MODE", "false")]).unwrap();
    assert_eq!(
        c.metrics_backend,
        MetricsBackend::CloudMonitoring(GcmConfig {
            endpoint: "https://monitoring.googleapis.com".into(),
            resource: crate::sink::gcm::Resource::Global,
            cumulative: crate::sink::gcm::Cumulative::default(),
        })
    );
    assert!(c.needs_google_credentials());
    let c = cfg(&[("LOCAL_MODE", "false"), ("METRICS_BACKEND", "stdout")]).unwrap();
    assert_eq!(c.metrics_backend, MetricsBackend::stdout());
    let c = cfg(&[("METRICS_BACKEND", "gcm"), ("GCM_RESOURCE", "generic_task"), ("K_SERVICE", "metrics-fn")]).unwrap();
    let MetricsBackend::CloudMonitoring(GcmConfig { resource, .. }) = c.metrics_backend else { panic!() };
    assert_eq!(
        resource,
        crate::sink::gcm::Resource::GenericTask {
            location: "global".into(),
            namespace: "pipeline-run-metrics".into(),
            job: "metrics-fn".into(),
            task_id: "singleton".into()
        }
    );
    let c = cfg(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", "k=v")]).unwrap();
    assert_eq!(
        c.metrics_backend,
        MetricsBackend::Otlp(OtlpConfig {
            endpoint: "http://127.0.0.1:4318".into(),
            headers: vec![("k".into(), Secret::from("v"))],
            service_name: "pipeline-run-metrics".into()
        })
    );
    assert!(c.needs_google_credentials(), "BigQuery without emulator");
    let c = cfg(&[("METRICS_BACKEND", "otlp"), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")]).unwrap();
    assert!(!c.needs_google_credentials());
}

#[test]
fn stdout_formats() {
    use crate::sink::stdout::LineFormat;
    let table: &[(&[(&str, &str)], LineFormat)] = &[
        (&[], LineFormat::Json),
        (&[("METRICS_FORMAT", "json")], LineFormat::Json),
        (&[("METRICS_FORMAT", "EMF")], LineFormat::Emf { namespace: "pipeline-run-metrics".into() }),
        (
            &[("METRICS_FORMAT", "emf"), ("EMF_NAMESPACE", "Data/Pipelines")],
            LineFormat::Emf { namespace: "Data/Pipelines".into() },
        ),
    ];
    for (env, want) in table {
        assert_eq!(cfg(env).unwrap().metrics_backend, MetricsBackend::Stdout { format: want.clone() }, "{env:?}");
    }
    for (env, variable) in [
        (vec![("METRICS_FORMAT", "xml")], "METRICS_FORMAT"),
        (vec![("METRICS_FORMAT", "emf"), ("METRICS_BACKEND", "otlp")], "METRICS_FORMAT"),
        (vec![("METRICS_FORMAT", "emf"), ("EMF_NAMESPACE", "AWS/Lambda")], "EMF_NAMESPACE"),
    ] {
        assert_eq!(cfg(&env).unwrap_err().variable, variable, "{env:?}");
    }
}

#[test]
fn cumulative_series_name_the_platform_instance() {
    use crate::sink::gcm::{Cumulative, TaskId};
    let cumulative = |env: &[(&str, &str)]| {
        let mut env = env.to_vec();
        env.push(("METRICS_BACKEND", "gcm"));
        match cfg(&env).unwrap().metrics_backend {
            MetricsBackend::CloudMonitoring(GcmConfig { cumulative, .. }) => cumulative,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(cumulative(&[]), Cumulative::default());
    assert_eq!(
        cumulative(&[("K_SERVICE", "fn"), ("K_REVISION", "fn-00007-xyz"), ("GCM_CUMULATIVE_INTERVAL_SECS", "30")]),
        Cumulative {
            job: "fn".into(),
            task: TaskId::CloudRun { revision: "fn-00007-xyz".into() },
            interval: Duration::from_secs(30),
            ..Cumulative::default()
        }
    );
    assert_eq!(
        cumulative(&[("AWS_LAMBDA_FUNCTION_NAME", "f"), ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/30/[$LATEST]ab")]),
        Cumulative {
            job: "f".into(),
            task: TaskId::Lambda { log_stream: "2026/11/30/[$LATEST]ab".into() },
            ..Cumulative::default()
        }
    );
    for bad in ["4", "0", "3601", "soon"] {
        let e = cfg(&[("METRICS_BACKEND", "gcm"), ("GCM_CUMULATIVE_INTERVAL_SECS", bad)]).unwrap_err();
        assert_eq!(e.variable, "GCM_CUMULATIVE_INTERVAL_SECS");
    }
}

#[test]
fn label_limits_follow_the_backend() {
    use crate::pipeline::labels::LabelLimits;
    assert_eq!(cfg(&[]).unwrap().delivery.labels, LabelLimits { max_value_bytes: 1024, max_values: 1000 });
    let c = cfg(&[("MAX_LABEL_VALUES", "0"), ("MAX_LABEL_VALUE_BYTES", "4096")]).unwrap();
    assert_eq!(c.delivery.labels, LabelLimits { max_value_bytes: 4096, max_values: 0 }, "stdout takes longer values");
    let e = cfg(&[("METRICS_BACKEND", "gcm"), ("MAX_LABEL_VALUE_BYTES", "4096")]).unwrap_err();
    assert_eq!(e.variable, "MAX_LABEL_VALUE_BYTES");
    assert!(e.expected.contains("Cloud Monitoring"), "{e}");
}

#[test]
fn the_metrics_file_copies_stdout_only() {
    assert_eq!(cfg(&[]).unwrap().metrics_file, None);
    let c = cfg(&[("METRICS_FILE", "/tmp/metrics.jsonl")]).unwrap();
    assert_eq!(c.metrics_file, Some("/tmp/metrics.jsonl".into()));
    let e = cfg(&[("METRICS_BACKEND", "otlp"), ("METRICS_FILE", "/tmp/metrics.jsonl")]).unwrap_err();
    assert_eq!((e.variable.as_str(), e.value.as_str()), ("METRICS_FILE", "/tmp/metrics.jsonl"));
    assert!(e.expected.contains("METRICS_BACKEND=stdout"), "{e}");
}
