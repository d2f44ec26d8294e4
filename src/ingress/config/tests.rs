//! The ingress's settings on their own: defaults, push authentication, the lineage key.

use super::*;

fn ingress(pairs: &[(&str, &str)]) -> Result<IngressConfig, ConfigError> {
    IngressConfig::from_vars(&Vars::from_pairs(pairs.iter().copied()))
}

#[test]
fn defaults() {
    let c = ingress(&[]).unwrap();
    assert_eq!((c.host.to_string(), c.port), ("0.0.0.0".to_string(), 8080));
    assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(c.connections, Connections::default());
    assert_eq!(c.shutdown_grace, Duration::from_secs(8));
    assert_eq!((c.auth, c.lineage_api_key), (None, None));
    assert_eq!(
        crate::pipeline::config::DEFAULT_BODY_BUFFER_BYTES,
        4 * DEFAULT_MAX_BODY_BYTES,
        "the pipeline's default buffer is four default bodies"
    );
}

#[test]
fn push_auth_needs_an_audience_and_accounts_and_a_jwks_url() {
    let c = ingress(&[("PUSH_AUDIENCE", "https://fn/"), ("PUSH_SERVICE_ACCOUNTS", "a@p"), ("AUTH_MODE", "VERIFY")]);
    let auth = c.unwrap().auth.unwrap();
    assert_eq!(auth.service_accounts, vec!["a@p"]);
    assert_eq!(auth.jwks_url, super::super::auth::GOOGLE_JWKS_URL);
    for (pairs, variable) in [
        (vec![("AUTH_MODE", "sometimes")], "AUTH_MODE"),
        (vec![("AUTH_MODE", "verify")], "AUTH_MODE"),
        (vec![("PUSH_AUDIENCE", "https://fn/"), ("PUSH_SERVICE_ACCOUNTS", " , ")], "PUSH_SERVICE_ACCOUNTS"),
        (
            vec![("PUSH_AUDIENCE", "https://fn/"), ("PUSH_SERVICE_ACCOUNTS", "a@p"), ("PUSH_JWKS_URL", "keys")],
            "PUSH_JWKS_URL",
        ),
    ] {
        let e = ingress(&pairs).unwrap_err();
        assert_eq!(e.variable, variable, "{pairs:?}: {e}");
    }
    assert_eq!(ingress(&[("AUTH_MODE", "trust-platform"), ("PUSH_AUDIENCE", "https://fn/")]).unwrap().auth, None);
}

#[test]
fn the_lineage_key_is_a_secret() {
    let c = ingress(&[("OPENLINEAGE_API_KEY", " k3y-value ")]).unwrap();
    assert_eq!(c.lineage_api_key.as_ref().map(Secret::expose), Some("k3y-value"), "trimmed");
    assert!(!format!("{c:?}").contains("k3y-value"), "{c:?}");
}
