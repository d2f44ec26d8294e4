//! Tests of the composed configuration: defaults, the rule of names, errors naming the
//! variable, secrets never shown.

use std::time::Duration;

use tracing::level_filters::LevelFilter;

use super::*;
use crate::config::test_config as cfg;

#[test]
fn allowed_datasets_are_required_outside_local_mode() {
    let e = Config::from_map(Vec::<(String, String)>::new()).unwrap_err();
    assert_eq!(e.variable, "ALLOWED_DATASETS");
    assert!(e.to_string().contains("required outside local mode"), "{e}");
    let local = Config::from_map([("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")]);
    assert_eq!(local.unwrap().delivery.allowed_datasets, None, "local mode: the data project's datasets");
    let c = cfg(&[("ALLOWED_DATASETS", "tmp_*, refined,other-proj.claims_*,third-proj.*")]).unwrap();
    assert_eq!(c.delivery.allowed_datasets.unwrap(), vec!["tmp_*", "refined", "other-proj.claims_*", "third-proj.*"]);
    for bad in ["*", "a.b.c", "a b", "tmp*x", "-p.ds", "ds-x", ""] {
        assert!(cfg(&[("ALLOWED_DATASETS", bad)]).is_err(), "{bad:?}");
    }
}

#[test]
fn defaults() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.ingress.host.to_string(), "0.0.0.0");
    assert_eq!(c.ingress.port, 8080);
    assert_eq!(c.metric_project, "local-project");
    assert_eq!(c.data_project, "test-project");
    assert_eq!(c.warehouse.emulator_host, None);
    assert_eq!(c.metrics_backend, MetricsBackend::stdout());
    assert_eq!(c.log_level, LevelFilter::INFO);
    assert_eq!(c.warehouse.query_timeout, Duration::from_secs(30));
}

#[test]
fn prefixed_names_win() {
    let c = cfg(&[
        ("CLOUD_RUN_PROJECT_ID", "plain"),
        ("MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID", "prefixed"),
        ("BIGQUERY_PROJECT_ID", "data-proj"),
    ])
    .unwrap();
    assert_eq!(c.metric_project, "prefixed");
    assert_eq!(c.data_project, "data-proj");
}

#[test]
fn errors_name_the_variable() {
    let cases = [
        ("PORT", "eighty"),
        ("HOST", "localhost:1"),
        ("CLOUD_RUN_PROJECT_ID", "bad project"),
        ("BIGQUERY_EMULATOR_HOST", "9050"),
        ("METRICS_BACKEND", "carrier-pigeon"),
        ("LOG_LEVEL", "loud"),
        ("BIGQUERY_TIMEOUT_SECS", "0"),
        ("HANDLERS_DIR", "/does/not/exist"),
        ("MAX_BODY_BYTES", "12"),
        ("METRICS_BACKEND", "kafka"),
        ("LOCAL_MODE", "maybe"),
        ("SINK_DEADLINE_SECS", "-1"),
        ("HEADER_READ_TIMEOUT_SECS", "0"),
        ("IDLE_TIMEOUT_SECS", "forever"),
        ("BODY_READ_TIMEOUT_SECS", "-1"),
        ("BODY_BUFFER_BYTES", "1024"),
        ("MAX_LABEL_VALUES", "some"),
        ("MAX_LABEL_VALUE_BYTES", "10"),
    ];
    for (k, v) in cases {
        let e = cfg(&[(k, v)]).unwrap_err();
        assert_eq!(e.variable, k);
        assert!(e.to_string().contains(k), "{e}");
    }
}

#[test]
fn connection_and_body_limits() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.ingress.connections, Connections::default());
    assert_eq!(c.delivery.body_read_timeout, Duration::from_secs(20));
    assert_eq!(c.delivery.body_buffer_bytes, 4 * DEFAULT_MAX_BODY_BYTES);
    let c = cfg(&[
        ("HEADER_READ_TIMEOUT_SECS", "2.5"),
        ("IDLE_TIMEOUT_SECS", "30"),
        ("BODY_READ_TIMEOUT_SECS", "5"),
        ("MAX_BODY_BYTES", "2048"),
    ])
    .unwrap();
    assert_eq!(
        c.ingress.connections,
        Connections { header_read: Duration::from_millis(2500), idle: Duration::from_secs(30) }
    );
    assert_eq!(c.delivery.body_read_timeout, Duration::from_secs(5));
    assert_eq!(c.delivery.body_buffer_bytes, 8192, "four bodies of MAX_BODY_BYTES by default");
    let e = cfg(&[("MAX_BODY_BYTES", "4096"), ("BODY_BUFFER_BYTES", "2048")]).unwrap_err();
    assert_eq!(e.variable, "BODY_BUFFER_BYTES");
    assert!(e.expected.contains("MAX_BODY_BYTES"), "{e}");
}

#[test]
fn secrets_are_not_printed() {
    let c = cfg(&[("GCP_SA_KEY_JSON", "{\"private_key\": \"XYZ\"}")]).unwrap();
    assert!(!format!("{c:?}").contains("XYZ"));
    assert!(matches!(c.google_credentials, GoogleCredentials::KeyJson(_)));
    let e = cfg(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", "token")]).unwrap_err();
    assert!(!e.to_string().contains("token\""), "{e}");
    let e = cfg(&[
        ("METRICS_BACKEND", "otlp"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,Authorization: Bearer s3cr3t"),
    ])
    .unwrap_err();
    assert!(!e.to_string().contains("s3cr3t") && !e.to_string().contains("acme"), "{e}");
    assert!(e.to_string().contains("pair 2 has no '='"), "{e}");
    let c =
        cfg(&[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cr3t")]).unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t"), "{c:?}");
    assert!(format!("{c:?}").contains("authorization: ***"), "{c:?}");
}

#[test]
fn google_credentials_have_one_source() {
    let creds = |env: &[(&str, &str)]| cfg(env).map(|c| c.google_credentials);
    assert_eq!(creds(&[]).unwrap(), GoogleCredentials::Default { file: None });
    assert_eq!(
        creds(&[("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp/wif.json")]).unwrap(),
        GoogleCredentials::Default { file: Some("/etc/gcp/wif.json".into()) }
    );
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gcp-key-AbCdEf";
    assert_eq!(creds(&[("GCP_SA_KEY_SECRET_ARN", arn)]).unwrap(), GoogleCredentials::KeySecret(arn.into()));
    assert_eq!(creds(&[("GCP_SA_KEY_SECRET_ARN", "gcp-key")]).unwrap(), GoogleCredentials::KeySecret("gcp-key".into()));
    let wif = r#"{"type": "external_account", "audience": "//iam.googleapis.com/x"}"#;
    assert_eq!(
        creds(&[("GCP_EXTERNAL_ACCOUNT_JSON", wif)]).unwrap(),
        GoogleCredentials::ExternalAccountJson(wif.into())
    );
    for (env, variable) in [
        (vec![("GCP_SA_KEY_JSON", "{}"), ("GCP_SA_KEY_SECRET_ARN", arn)], "GCP_SA_KEY_SECRET_ARN"),
        (vec![("GCP_SA_KEY_SECRET_ARN", arn), ("GCP_EXTERNAL_ACCOUNT_JSON", wif)], "GCP_EXTERNAL_ACCOUNT_JSON"),
        (vec![("GCP_SA_KEY_SECRET_ARN", "arn:aws:s3:::bucket")], "GCP_SA_KEY_SECRET_ARN"),
        (vec![("GCP_EXTERNAL_ACCOUNT_JSON", r#"{"type": "service_account"}"#)], "GCP_EXTERNAL_ACCOUNT_JSON"),
    ] {
        let e = creds(&env).unwrap_err();
        assert_eq!(e.variable, variable, "{env:?}: {e}");
    }
    // a key set together with another source is named, never shown
    let e =
        creds(&[("GCP_SA_KEY_JSON", "{\"private_key\": \"XYZ\"}"), ("GCP_EXTERNAL_ACCOUNT_JSON", wif)]).unwrap_err();
    assert!(!e.to_string().contains("XYZ"), "{e}");
}

#[test]
fn emulator_host_forms() {
    let c = cfg(&[("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")]).unwrap();
    assert_eq!(c.warehouse.emulator_host.as_deref(), Some("127.0.0.1:9050"));
    assert!(cfg(&[("BIGQUERY_EMULATOR_HOST", "http://localhost:9050")]).is_ok());
}

#[test]
fn the_prefixed_source_wins_in_the_whole_configuration() {
    let c = cfg(&[
        ("MAGEAI_MONITORING_BIGQUERY_PROJECT_ID", "prefixed-data"),
        ("BIGQUERY_PROJECT_ID", "plain-data"),
        ("MAGEAI_MONITORING_LOCAL_MODE", "false"),
        ("LOCAL_MODE", "true"),
    ])
    .unwrap();
    assert_eq!(c.data_project, "prefixed-data");
    assert!(c.metrics_backend.is_cloud_monitoring(), "the prefixed LOCAL_MODE=false chose Cloud Monitoring");
    // the error names the variable that was read
    let e = cfg(&[("MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID", "bad project"), ("CLOUD_RUN_PROJECT_ID", "good")])
        .unwrap_err();
    assert_eq!(e.variable, "MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID");
    assert_eq!(e.value, "bad project");
    // a bad plain value is not read when the prefixed one is set
    let c = cfg(&[("MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID", "good"), ("CLOUD_RUN_PROJECT_ID", "bad project")]);
    assert_eq!(c.unwrap().metric_project, "good");
}

#[test]
fn a_secret_never_appears_in_debug_nor_in_errors() {
    let secrets = [
        ("GCP_SA_KEY_JSON", "{\"private_key\": \"K3Y-S3CR3T\"}"),
        ("OPENLINEAGE_API_KEY", "L1NEAGE-S3CR3T"),
        ("FACT_STORE", "redis"),
        ("REDIS_URL", "redis://:R3DIS-S3CR3T@10.0.0.3:6379/0"),
        ("METRICS_BACKEND", "otlp"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20OTLP-S3CR3T,x-tenant=T3NANT"),
    ];
    let c = cfg(&secrets).unwrap();
    let shown = format!("{c:?} {c:#?}");
    for word in ["K3Y-S3CR3T", "L1NEAGE-S3CR3T", "R3DIS-S3CR3T", "OTLP-S3CR3T", "T3NANT"] {
        assert!(!shown.contains(word), "{word} in {shown}");
    }
    // each secret next to an error of its own variable or of another: never in the error
    let mut broken = secrets.to_vec();
    broken.push(("GCP_EXTERNAL_ACCOUNT_JSON", r#"{"type": "external_account"}"#));
    let e = cfg(&broken).unwrap_err();
    assert_eq!(e.variable, "GCP_EXTERNAL_ACCOUNT_JSON");
    for pairs in [
        broken.as_slice(),
        &[("FACT_STORE", "redis"), ("REDIS_URL", "redis://:R3DIS-S3CR3T@h:port")],
        &[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_HEADERS", "a=OTLP-S3CR3T,b")],
        &[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://u:OTLP-S3CR3T@")],
    ] {
        let e = cfg(pairs).unwrap_err();
        let text = format!("{e} {e:?}");
        for word in ["K3Y-S3CR3T", "R3DIS-S3CR3T", "OTLP-S3CR3T"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }
}

#[test]
fn a_bad_url_names_the_variable_and_the_value() {
    let cases: &[&[(&str, &str)]] = &[
        &[("METRICS_BACKEND", "gcm"), ("GCM_ENDPOINT", "https//monitoring.googleapis.com")],
        &[("METRICS_BACKEND", "otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://col lector:4318")],
        &[("PUSH_AUDIENCE", "https://fn/"), ("PUSH_SERVICE_ACCOUNTS", "a@p"), ("PUSH_JWKS_URL", "file:///etc/keys")],
    ];
    for pairs in cases {
        let (variable, value) = pairs[pairs.len() - 1];
        let e = cfg(pairs).unwrap_err();
        assert_eq!((e.variable.as_str(), e.value.as_str()), (variable, value), "{e}");
        assert_eq!(e.to_string(), format!("invalid configuration: {variable}={value:?}: an http:// or https:// URL"));
    }
}
