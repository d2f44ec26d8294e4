use super::*;

const CONFIG: &str = r#"{
  "type": "external_account",
  "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aws-pool/providers/aws-lambda",
  "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
  "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/fn@p.iam.gserviceaccount.com:generateAccessToken",
  "token_url": "https://sts.googleapis.com/v1/token",
  "credential_source": {
    "environment_id": "aws1",
    "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
    "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
    "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
  }
}"#;

fn identity() -> AwsIdentity {
    AwsIdentity {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: Some("session-token".into()),
        region: "eu-west-1".into(),
    }
}

#[test]
fn the_subject_token_is_the_signed_request_serialised_as_google_documents() {
    let ea = ExternalAccount::from_json(CONFIG, reqwest::Client::new(), identity().fixed()).unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
    let token = ea.subject_token(&identity(), at).unwrap();
    let json = percent_encoding::percent_decode_str(&token).decode_utf8().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["url"], "https://sts.eu-west-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15");
    let keys: Vec<&str> = v["headers"].as_array().unwrap().iter().map(|h| h["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["Authorization", "host", "x-amz-date", "x-amz-security-token", TARGET_RESOURCE_HEADER]);
    let header = |k: &str| v["headers"].as_array().unwrap().iter().find(|h| h["key"] == k).unwrap()["value"].clone();
    assert_eq!(header("host"), "sts.eu-west-1.amazonaws.com");
    assert_eq!(header("x-amz-date"), "20260101T000000Z");
    assert_eq!(header("x-amz-security-token"), "session-token");
    assert_eq!(
        header(TARGET_RESOURCE_HEADER),
        "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aws-pool/providers/aws-lambda"
    );
    let auth = header("Authorization");
    let auth = auth.as_str().unwrap();
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/sts/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token;x-goog-cloud-target-resource, Signature="
        ),
        "{auth}"
    );
    // the JSON keys in the order Google's libraries write them, percent-encoded like quote()
    assert!(json.starts_with("{\"headers\":[{\"key\":\"Authorization\""), "{json}");
    assert!(token.starts_with("%7B%22headers%22%3A%5B"), "{token}");
    assert!(!token.contains(['{', '"', ' ', ':']), "{token}");
}

#[test]
fn configurations_that_are_not_aws_external_accounts_are_refused_naming_the_field() {
    let with = |from: &str, to: &str| CONFIG.replace(from, to);
    for (json, says) in [
        ("{}".to_string(), "not an external_account credential configuration"),
        (with("\"external_account\"", "\"service_account\""), "not 'external_account'"),
        (with("aws:token-type:aws4_request", "oauth:token-type:jwt"), "only AWS"),
        (with("\"aws1\"", "\"aws2\""), "environment_id"),
        (with("https://sts.{region}", "http://sts.{region}"), "regional_cred_verification_url"),
        (with("https://sts.googleapis.com/v1/token", "sts"), "token_url is not a URL"),
    ] {
        let err = ExternalAccount::from_json(&json, reqwest::Client::new(), identity().fixed()).err().unwrap();
        assert!(err.is_invalid_key() && err.to_string().contains(says), "{says}: {err}");
    }
}

#[test]
fn the_aws_identity_is_read_from_lambdas_variables_and_a_missing_one_is_named() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    let id = AwsIdentity::from_env(&env(&[
        ("AWS_ACCESS_KEY_ID", "ASIA1"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        ("AWS_SESSION_TOKEN", "t"),
        ("AWS_DEFAULT_REGION", "us-east-2"),
    ]))
    .unwrap();
    assert_eq!(
        (id.access_key_id.as_str(), id.session_token.as_deref(), id.region.as_str()),
        ("ASIA1", Some("t"), "us-east-2")
    );
    assert!(!format!("{id:?}").contains("\"s\""), "the secret is not printed");
    let err = AwsIdentity::from_env(&env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_REGION", "r")])).unwrap_err();
    assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY is not set"), "{err}");
    let err = AwsIdentity::from_env(&env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "s")])).unwrap_err();
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
}
