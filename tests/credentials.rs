//! Google credentials without a key in a plain environment variable (AWS Lambda):
//! * workload identity federation from AWS (an `external_account` configuration): the signed
//!   `GetCallerIdentity` request exchanged at a fake of Google's STS, then impersonation at a
//!   fake of IAM Credentials (tests/common/fakes/sts.rs; real texts and statuses, SOURCES.md
//!   §3.3-§3.4): a successful exchange, STS refusals, impersonation refusals;
//! * the key read at startup from AWS Secrets Manager through the AWS SDK, against a fake of
//!   `GetSecretValue` (tests/common/fakes/secrets_manager.rs, SOURCES.md §10).
//!
//! Each failure is checked as the library reports it and as the real binary says it at startup
//! (exit code 2, one line naming the step and the service's own words).

mod common;

use std::time::Duration;

use common::fakes::secrets_manager::FakeSecretsManager;
use common::fakes::sts::{self, FakeSts};
use common::fakes::token::FakeTokenServer;
use common::process::{BIN, Process, free_port};
use pipeline_run_metrics::google::credentials::{BIGQUERY_SCOPE, MONITORING_SCOPE, TokenSource};
use pipeline_run_metrics::google::external_account::{AwsIdentity, ExternalAccount};
use pipeline_run_metrics::retry::Policy;

fn lambda_identity() -> AwsIdentity {
    AwsIdentity {
        access_key_id: sts::AWS_ACCESS_KEY_ID.into(),
        secret_access_key: sts::AWS_SECRET_ACCESS_KEY.into(),
        session_token: Some(sts::AWS_SESSION_TOKEN.into()),
        region: sts::AWS_REGION.into(),
    }
}

/// Retries short enough for tests.
const QUICK: Policy = Policy {
    first_backoff: Duration::from_millis(10),
    max_backoff: Duration::from_millis(50),
    deadline: Duration::from_secs(2),
};

fn account(config: &str, aws: AwsIdentity) -> ExternalAccount {
    ExternalAccount::from_json(config, reqwest::Client::new(), aws.fixed()).unwrap().with_retry(QUICK)
}

#[tokio::test]
async fn workload_identity_exchanges_the_signed_aws_request_and_impersonates_the_service_account() {
    let fake = FakeSts::start().await;
    let ea = account(&fake.config(sts::AUDIENCE, Some(sts::SERVICE_ACCOUNT)), lambda_identity());
    let scopes = [BIGQUERY_SCOPE, MONITORING_SCOPE];
    assert_eq!(ea.token(&scopes).await.unwrap(), sts::IMPERSONATED_TOKEN);
    let calls = fake.calls();
    assert_eq!(calls.iter().map(|c| c.endpoint).collect::<Vec<_>>(), ["token", "generateAccessToken"]);
    // the exchange: RFC 8693 fields, the federated token for cloud-platform
    let form = &calls[0].body;
    assert_eq!(form["grant_type"], "urn:ietf:params:oauth:grant-type:token-exchange");
    assert_eq!(form["audience"], sts::AUDIENCE);
    assert_eq!(form["scope"], "https://www.googleapis.com/auth/cloud-platform");
    assert_eq!(form["requested_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!(form["subject_token_type"], "urn:ietf:params:aws:token-type:aws4_request");
    assert_eq!(calls[0].authorization, None, "STS needs no client authentication");
    // impersonation: the federated token as bearer, the scopes asked, one hour
    assert_eq!(calls[1].authorization.as_deref(), Some(format!("Bearer {}", sts::FEDERATED_TOKEN).as_str()));
    assert_eq!(calls[1].body, serde_json::json!({"scope": scopes, "lifetime": "3600s"}));
    // cached for its lifetime
    assert_eq!(ea.token(&scopes).await.unwrap(), sts::IMPERSONATED_TOKEN);
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test]
async fn without_impersonation_the_federated_token_is_asked_for_the_scopes_themselves() {
    let fake = FakeSts::start().await;
    let ea = account(&fake.config(sts::AUDIENCE, None), lambda_identity());
    assert_eq!(ea.token(&[BIGQUERY_SCOPE]).await.unwrap(), sts::FEDERATED_TOKEN);
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["scope"], BIGQUERY_SCOPE);
}

#[tokio::test]
async fn sts_refusals_keep_the_status_the_error_code_and_googles_words() {
    let fake = FakeSts::start().await;
    let other =
        "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/providers/deleted";
    let wrong_key = AwsIdentity { secret_access_key: "not-the-role-secret".into(), ..lambda_identity() };
    *fake.reject_identity.lock().unwrap() = false;
    let cases: Vec<(String, AwsIdentity, bool, &str, &str)> = vec![
        (
            fake.config(other, Some(sts::SERVICE_ACCOUNT)),
            lambda_identity(),
            false,
            "invalid_target",
            "the pool or provider is disabled or deleted",
        ),
        (
            fake.config("projects/123/providers/x", Some(sts::SERVICE_ACCOUNT)),
            lambda_identity(),
            false,
            "invalid_request",
            "Invalid value for \"audience\"",
        ),
        (
            fake.config(sts::AUDIENCE, Some(sts::SERVICE_ACCOUNT)),
            lambda_identity(),
            true,
            "unauthorized_client",
            "rejected by the attribute condition",
        ),
        (
            fake.config(sts::AUDIENCE, Some(sts::SERVICE_ACCOUNT)),
            wrong_key,
            false,
            "invalid_grant",
            "SignatureDoesNotMatch",
        ),
    ];
    for (config, aws, reject, code, says) in cases {
        *fake.reject_identity.lock().unwrap() = reject;
        let before = fake.calls().len();
        let err = account(&config, aws).token(&[BIGQUERY_SCOPE]).await.unwrap_err();
        assert!(err.is_refused(), "{code}: {err}");
        assert_eq!(err.status(), Some(400), "{err}");
        assert_eq!(err.oauth_error(), Some(code), "{err}");
        let text = err.to_string();
        assert!(text.contains("Security Token Service") && text.contains("/v1/token") && text.contains(says), "{text}");
        assert!(!text.contains(sts::AWS_SECRET_ACCESS_KEY) && !text.contains(sts::AWS_SESSION_TOKEN), "{text}");
        // refused once: not retried, and no impersonation attempted
        assert_eq!(fake.calls()[before..].iter().map(|c| c.endpoint).collect::<Vec<_>>(), ["token"], "{code}");
    }
}

#[tokio::test]
async fn impersonation_refusals_name_the_service_account_and_the_permission() {
    let fake = FakeSts::start().await;
    *fake.deny_impersonation.lock().unwrap() = true;
    let err = account(&fake.config(sts::AUDIENCE, Some(sts::SERVICE_ACCOUNT)), lambda_identity())
        .token(&[BIGQUERY_SCOPE])
        .await
        .unwrap_err();
    assert!(err.is_refused() && err.status() == Some(403), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "IAM Credentials generateAccessToken for {} answered HTTP 403: PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
            sts::SERVICE_ACCOUNT
        )
    );
    // a service account that does not exist: 404 without a body
    *fake.deny_impersonation.lock().unwrap() = false;
    let err =
        account(&fake.config(sts::AUDIENCE, Some("gone@metrics-proj.iam.gserviceaccount.com")), lambda_identity())
            .token(&[BIGQUERY_SCOPE])
            .await
            .unwrap_err();
    assert!(err.is_refused() && err.status() == Some(404), "{err}");
    assert!(
        err.to_string().contains("gone@metrics-proj.iam.gserviceaccount.com answered HTTP 404: (no body)"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unavailable_sts_is_retried() {
    let fake = FakeSts::start().await;
    fake.fail_next.lock().unwrap().extend([503, 500]);
    let ea = account(&fake.config(sts::AUDIENCE, Some(sts::SERVICE_ACCOUNT)), lambda_identity());
    assert_eq!(ea.token(&[BIGQUERY_SCOPE]).await.unwrap(), sts::IMPERSONATED_TOKEN);
    assert_eq!(fake.calls().iter().filter(|c| c.endpoint == "token").count(), 3);
}

// ---- the real binary at startup -----------------------------------------------------------

/// The binary with a clean environment plus `env`, Cloud Monitoring as backend (which needs a
/// token at startup), BigQuery's emulator address unreachable (never asked before the token);
/// AWS's instance metadata is off in every case, so nothing here leaves 127.0.0.1.
fn startup_failure(env: Vec<(String, String)>) -> String {
    let out = Process::new(BIN)
        .clean_env(&["PATH"])
        .env("HOME", std::env::temp_dir())
        .env("HOST", "127.0.0.1")
        .env("PORT", common::process::free_port().to_string())
        .env("METRICS_BACKEND", "gcm")
        .env("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env)
        .output();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line: serde_json::Value = serde_json::from_str(err.lines().next().unwrap()).unwrap();
    assert_eq!(line["severity"], "ERROR");
    // "no usable Google credentials" (the configuration named none that can be used, or its
    // first token was refused)
    assert!(line["message"].as_str().unwrap().starts_with("no usable Google credentials"), "{line}");
    line["error"].as_str().unwrap().to_string()
}

const LAMBDA_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", sts::AWS_ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", sts::AWS_SECRET_ACCESS_KEY),
    ("AWS_SESSION_TOKEN", sts::AWS_SESSION_TOKEN),
    ("AWS_REGION", sts::AWS_REGION),
];

/// The variables Lambda sets, plus `extra`.
fn lambda_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    LAMBDA_ENV.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// [`startup_failure`] off the test's runtime (the fakes keep answering meanwhile).
async fn fails_at_startup(env: Vec<(String, String)>) -> String {
    tokio::task::spawn_blocking(move || startup_failure(env)).await.unwrap()
}

#[tokio::test]
async fn the_binary_says_which_step_of_workload_identity_federation_failed() {
    let fake = FakeSts::start().await;
    let deleted =
        "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/aws-pool/providers/deleted";
    let config = fake.config(deleted, Some(sts::SERVICE_ACCOUNT));
    let err = fails_at_startup(lambda_env(&[("GCP_EXTERNAL_ACCOUNT_JSON", &config)])).await;
    assert_eq!(
        err,
        format!(
            "cannot obtain an access token for [\"https://www.googleapis.com/auth/monitoring.write\"]: Security Token Service {}/v1/token (token exchange) answered HTTP 400: invalid_target: The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
            fake.url
        )
    );

    // impersonation refused; the configuration read from GOOGLE_APPLICATION_CREDENTIALS
    *fake.deny_impersonation.lock().unwrap() = true;
    let file = std::env::temp_dir().join(format!("wif-{}.json", std::process::id()));
    std::fs::write(&file, fake.config(sts::AUDIENCE, Some(sts::SERVICE_ACCOUNT))).unwrap();
    let err = fails_at_startup(lambda_env(&[("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap())])).await;
    assert!(
        err.ends_with(&format!(
            "IAM Credentials generateAccessToken for {} answered HTTP 403: PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
            sts::SERVICE_ACCOUNT
        )),
        "{err}"
    );

    // no AWS credentials in the environment: said before anything is asked
    let config = fake.config(sts::AUDIENCE, Some(sts::SERVICE_ACCOUNT));
    let before = fake.calls().len();
    let env = [("GCP_EXTERNAL_ACCOUNT_JSON", config.as_str()), ("AWS_REGION", sts::AWS_REGION)];
    let err = fails_at_startup(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).await;
    assert!(err.contains("AWS_ACCESS_KEY_ID is not set"), "{err}");
    assert_eq!(fake.calls().len(), before);
    std::fs::remove_file(file).ok();
}

#[tokio::test]
async fn the_binary_says_why_the_key_secret_could_not_be_read() {
    let sm = FakeSecretsManager::start().await;
    let tokens = FakeTokenServer::start().await;
    let denied = FakeSecretsManager::arn("gcp-key-other-team");
    sm.deny(&denied);
    let not_a_key = FakeSecretsManager::arn("not-a-key");
    sm.put(&not_a_key, "{\"type\": \"authorized_user\"}");
    let rotated = FakeSecretsManager::arn("gcp-key-rotated");
    sm.put(&rotated, &tokens.rotated_key_json());
    let missing = FakeSecretsManager::arn("gcp-key-missing");
    let cases = [
        (
            missing.clone(),
            format!(
                "GCP_SA_KEY_SECRET_ARN: Secrets Manager GetSecretValue of {missing} failed: ResourceNotFoundException: Secrets Manager can't find the specified secret."
            ),
        ),
        (
            denied.clone(),
            format!(
                "GCP_SA_KEY_SECRET_ARN: Secrets Manager GetSecretValue of {denied} failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/pipeline-run-metrics-role/pipeline-run-metrics is not authorized to perform: secretsmanager:GetSecretValue on resource: {denied} because no identity-based policy allows the secretsmanager:GetSecretValue action"
            ),
        ),
        (
            not_a_key.clone(),
            format!("the secret {not_a_key} is not a usable service-account key: not a service-account key:"),
        ),
        (
            rotated.clone(),
            format!(
                "cannot obtain an access token for [\"https://www.googleapis.com/auth/monitoring.write\"]: token endpoint {}/token answered HTTP 400: invalid_grant: Invalid JWT Signature.",
                tokens.url
            ),
        ),
    ];
    for (arn, want) in cases {
        let env = lambda_env(&[("GCP_SA_KEY_SECRET_ARN", &arn), ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &sm.url)]);
        let err = fails_at_startup(env).await;
        assert!(err.starts_with(&want) || err.contains(&want), "want {want}\n got {err}");
        assert!(!err.contains("PRIVATE KEY"), "the key is never logged: {err}");
    }
    // every call was GetSecretValue, signed for Secrets Manager in the ARN's region
    let requests = sm.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 4);
    for (target, auth, body) in requests {
        assert_eq!(target, "secretsmanager.GetSecretValue");
        assert!(
            auth.contains(&format!("Credential={}/", sts::AWS_ACCESS_KEY_ID))
                && auth.contains("/eu-west-1/secretsmanager/aws4_request"),
            "{auth}"
        );
        assert!(body["SecretId"].as_str().unwrap().starts_with("arn:aws:secretsmanager:eu-west-1:"));
    }
}

/// The binary serving with credentials from `env`, against the BigQuery emulator and a fake
/// Cloud Monitoring: one event's points are written with the token the credentials gave.
async fn serves_with(env: &[(String, String)]) -> String {
    let gcm = common::fakes::gcm::FakeGcm::start().await;
    let port = free_port().to_string();
    let mut run = Process::new(BIN)
        .clean_env(&["PATH"])
        .env("HOME", std::env::temp_dir())
        .env("HOST", "127.0.0.1")
        .env("PORT", &port)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BIGQUERY_EMULATOR_HOST", common::bigquery::emulator())
        .env("METRICS_BACKEND", "gcm")
        .env("GCM_ENDPOINT", &gcm.url)
        .env("CLOUD_RUN_PROJECT_ID", "my-proj")
        .env("SELF_METRICS", "false")
        .env("PROFILES", "none")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .spawn();
    run.wait_listening(Duration::from_secs(20)).await;
    // a RUNNING record: only the built-in count matches (no BigQuery work), one point
    let t = chrono::Utc::now() - chrono::Duration::seconds(30);
    let ts = chrono::DateTime::from_timestamp_millis(t.timestamp_millis())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let record =
        common::fixtures::record("pipesv2_wrangling", "RUNNING", &ts, serde_json::json!({"partner": "abertta"}));
    let body = common::push::push_body(&record, "m-1");
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let reqs = gcm.requests();
    assert!(!reqs.is_empty(), "points written");
    run.stop();
    reqs[0].headers["authorization"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn the_binary_writes_metrics_with_a_federated_impersonated_token() {
    let fake = FakeSts::start().await;
    let config = fake.config(sts::AUDIENCE, Some(sts::SERVICE_ACCOUNT));
    assert_eq!(
        serves_with(&lambda_env(&[("GCP_EXTERNAL_ACCOUNT_JSON", &config)])).await,
        format!("Bearer {}", sts::IMPERSONATED_TOKEN)
    );
}

#[tokio::test]
async fn the_binary_writes_metrics_with_the_key_read_from_secrets_manager() {
    let sm = FakeSecretsManager::start().await;
    let tokens = FakeTokenServer::start().await;
    let arn = FakeSecretsManager::arn("gcp-sa-key");
    sm.put(&arn, &tokens.service_account_json());
    let env = lambda_env(&[("GCP_SA_KEY_SECRET_ARN", &arn), ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &sm.url)]);
    assert_eq!(serves_with(&env).await, "Bearer ya29.fake-token");
    assert_eq!(sm.requests.lock().unwrap().len(), 1, "read once, at startup");
}
