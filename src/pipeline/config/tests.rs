//! Tests of the pipeline's settings, read through the whole configuration.

use std::time::Duration;

use super::*;
use crate::config::test_config as cfg;

#[test]
fn delivery_settings() {
    let d = cfg(&[("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")]).unwrap().delivery;
    assert_eq!(d, Delivery { allowed_datasets: Some(vec!["tmp_*".into()]), ..Delivery::default() });
    let c = cfg(&[
        ("PUSH_AUDIENCE", "https://fn.example.com/"),
        ("PUSH_SERVICE_ACCOUNTS", "a@p.iam.gserviceaccount.com, b@p.iam.gserviceaccount.com"),
        ("ACK_PERMANENT_ERRORS", "true"),
        ("ALLOWED_DATASETS", "tmp_cemig,other-proj.refined"),
        ("DEDUP_WINDOW_SECS", "0"),
    ])
    .unwrap();
    let d = c.delivery;
    let auth = c.ingress.auth.unwrap();
    assert_eq!(auth.audience, "https://fn.example.com/");
    assert_eq!(auth.service_accounts, vec!["a@p.iam.gserviceaccount.com", "b@p.iam.gserviceaccount.com"]);
    assert_eq!(auth.jwks_url, crate::ingress::auth::GOOGLE_JWKS_URL);
    assert!(d.ack_permanent);
    assert_eq!(d.allowed_datasets.unwrap(), vec!["tmp_cemig", "other-proj.refined"]);
    assert_eq!(d.dedup_window, Duration::ZERO);
    assert!(cfg(&[("PUSH_AUDIENCE", "https://x/"), ("AUTH_MODE", "off")]).unwrap().ingress.auth.is_none());
    for bad in [
        vec![("AUTH_MODE", "verify")],
        vec![("PUSH_AUDIENCE", "https://x/")],
        vec![("ALLOWED_DATASETS", "a.b.c")],
        vec![("ALLOWED_DATASETS", "a b")],
        vec![("MAX_IN_FLIGHT", "many")],
        vec![("DEDUP_CAPACITY", "0")],
    ] {
        assert!(cfg(&bad).is_err(), "{bad:?}");
    }
    assert!(cfg(&[("METRICS_BACKEND", "otlp")]).unwrap().delivery.self_metrics, "on for production backends");
}
