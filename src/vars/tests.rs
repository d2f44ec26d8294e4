//! The sources and the rule of names: the prefixed form wins, only for the reference's
//! variables, empty counts as unset, values stay text; URLs checked by the `url` crate.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vars {
    Vars::from_pairs(pairs.iter().copied())
}

#[test]
fn the_prefixed_source_wins_and_is_named() {
    let v = vars(&[("CLOUD_RUN_PROJECT_ID", "plain"), ("MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID", "prefixed")]);
    assert_eq!(
        v.pick(&["CLOUD_RUN_PROJECT_ID"]),
        Some(("MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID".to_string(), "prefixed".to_string()))
    );
    // the order the pairs come in does not matter: the prefixed source is merged last
    let v = vars(&[("MAGEAI_MONITORING_LOCAL_MODE", "false"), ("LOCAL_MODE", "true")]);
    assert_eq!(v.pick(&["LOCAL_MODE"]), Some(("MAGEAI_MONITORING_LOCAL_MODE".into(), "false".into())));
    // only the plain one set: it is read, and named
    let v = vars(&[("BIGQUERY_PROJECT_ID", "data")]);
    assert_eq!(v.pick(&["BIGQUERY_PROJECT_ID"]), Some(("BIGQUERY_PROJECT_ID".into(), "data".into())));
    // only the prefixed one set
    let v = vars(&[("MAGEAI_MONITORING_BIGQUERY_PROJECT_ID", "p")]);
    assert_eq!(v.pick(&["BIGQUERY_PROJECT_ID"]), Some(("MAGEAI_MONITORING_BIGQUERY_PROJECT_ID".into(), "p".into())));
}

#[test]
fn an_empty_prefixed_value_leaves_the_plain_one_in_force() {
    for empty in ["", "  ", "\t"] {
        let v = vars(&[("MAGEAI_MONITORING_LOCAL_MODE", empty), ("LOCAL_MODE", " false ")]);
        assert_eq!(v.pick(&["LOCAL_MODE"]), Some(("LOCAL_MODE".into(), "false".into())), "{empty:?}");
        let v = vars(&[("LOCAL_MODE", empty)]);
        assert_eq!(v.pick(&["LOCAL_MODE"]), None, "{empty:?}");
        assert_eq!(v.raw("LOCAL_MODE"), None, "{empty:?}");
    }
}

#[test]
fn only_the_reference_variables_have_a_prefixed_form() {
    let v = vars(&[("MAGEAI_MONITORING_PORT", "1"), ("MAGEAI_MONITORING_METRICS_BACKEND", "gcm")]);
    assert_eq!(v.pick(&["PORT"]), None);
    assert_eq!(v.pick(&["METRICS_BACKEND"]), None);
    // the names are case-sensitive, the prefix included
    let v = vars(&[("mageai_monitoring_LOCAL_MODE", "false"), ("MAGEAI_MONITORING_local_mode", "false")]);
    assert_eq!(v.pick(&["LOCAL_MODE"]), None);
    assert_eq!(unprefixed("MAGEAI_MONITORING_LOCAL_MODE"), Some("LOCAL_MODE"));
    assert_eq!(unprefixed("MAGEAI_MONITORING_PORT"), None);
    assert_eq!(unprefixed("LOCAL_MODE"), None);
}

#[test]
fn the_first_name_set_wins_and_values_stay_text() {
    let v = vars(&[("K_SERVICE", "svc"), ("AWS_LAMBDA_FUNCTION_NAME", "fn")]);
    assert_eq!(v.pick(&["GCM_JOB", "K_SERVICE", "AWS_LAMBDA_FUNCTION_NAME"]), Some(("K_SERVICE".into(), "svc".into())));
    // figment would parse these as a number, an array, a dictionary: they stay as written
    let json = " {\"type\": \"external_account\", \"n\": [1, 2]} ";
    let v = vars(&[("PORT", "8080"), ("FILES_TABLES", "[a,b]"), ("GCP_SA_KEY_JSON", json), ("A.B", "dotted")]);
    assert_eq!(v.pick(&["PORT"]).unwrap().1, "8080");
    assert_eq!(v.pick(&["FILES_TABLES"]).unwrap().1, "[a,b]");
    assert_eq!(v.raw("GCP_SA_KEY_JSON").as_deref(), Some(json), "raw: not trimmed");
    assert_eq!(v.pick(&["GCP_SA_KEY_JSON"]).unwrap().1, json.trim());
}

#[test]
fn urls_are_checked_and_the_error_names_the_variable() {
    for bad in
        ["monitoring.googleapis.com", "collector:4318", "ftp://h/x", "http://", "http://exa mple.com", "https://[::1"]
    {
        let e = vars(&[("GCM_ENDPOINT", bad)]).url("GCM_ENDPOINT", "https://d").unwrap_err();
        assert_eq!(e.variable, "GCM_ENDPOINT", "{bad}");
        assert_eq!(e.value, bad);
        assert!(e.to_string().contains("GCM_ENDPOINT") && e.to_string().contains("http:// or https://"), "{e}");
    }
    let v = vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318/")]);
    assert_eq!(v.url("OTEL_EXPORTER_OTLP_ENDPOINT", "x").unwrap(), "https://collector.example:4318");
    assert_eq!(vars(&[]).url("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318").unwrap(), "http://127.0.0.1:4318");
    // a password in a bad URL is not echoed
    let e = vars(&[("PUSH_JWKS_URL", "ftp://user:hunter2@keys.example/certs")]).url("PUSH_JWKS_URL", "x").unwrap_err();
    assert_eq!(e.variable, "PUSH_JWKS_URL");
    assert!(!e.to_string().contains("hunter2") && e.to_string().contains("keys.example"), "{e}");
}

#[test]
fn userinfo_is_masked() {
    assert_eq!(mask_userinfo("https://u:p@h:1/x@y"), "https://***@h:1/x@y");
    assert_eq!(mask_userinfo("https://h:1/x@y"), "https://h:1/x@y");
    // mistyped URLs (when the error is shown) keep no password either
    assert_eq!(mask_userinfo("no scheme@h"), "***@h");
    assert_eq!(mask_userinfo("rediss//user:S3cretPW@bad"), "***@bad");
    assert_eq!(mask_userinfo("redis:/user:S3cretPW@host:6379/0"), "***@host:6379/0");
    assert_eq!(mask_userinfo("http//u:Pw12345@collector"), "***@collector");
    assert_eq!(mask_userinfo("user:S3cretPW@host:6379"), "***@host:6379");
}

#[test]
fn secrets_are_redacted_and_compared() {
    let s = Secret::from("hunter2");
    assert_eq!(format!("{s:?}"), "Secret(***)");
    assert_eq!(s.expose(), "hunter2");
    assert_eq!(s, Secret::from("hunter2".to_string()));
    assert_ne!(s, Secret::from("hunter3"));
    assert!(!format!("{:?}", s.0).contains("hunter2"), "the secrecy type redacts too");
}

#[test]
fn shared_parsers_name_the_variable() {
    let v = vars(&[("A", "x"), ("B", "-1"), ("C", "maybe"), ("D", "12")]);
    assert_eq!(v.count("A", 1).unwrap_err().variable, "A");
    assert_eq!(v.seconds("B", 1.0).unwrap_err().variable, "B");
    assert_eq!(v.timeout("B", 1.0).unwrap_err().variable, "B");
    assert_eq!(v.flag("C", true).unwrap_err().variable, "C");
    assert_eq!(v.bytes("D", 1, 1024, "at least 1024").unwrap_err().expected, "at least 1024");
    assert_eq!(v.timeout("UNSET", 2.5).unwrap(), Duration::from_millis(2500));
    assert_eq!(vars(&[("L", " a, ,b ,")]).list("L"), Some(("L".into(), vec!["a".into(), "b".into()])));
    assert!(is_host_port("http://127.0.0.1:9050/") && !is_host_port("9050") && !is_host_port(":1"));
}
