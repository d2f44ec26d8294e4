//! AWS Secrets Manager: the Google service-account key read at startup (`GCP_SA_KEY_SECRET_ARN`),
//! so that the key is in neither the template, the function's configuration nor its environment.
//!
//! `GetSecretValue` through the AWS SDK for Rust (`aws-sdk-secretsmanager`, `aws-config`) with its
//! default credential chain (on Lambda: the execution role's credentials in the environment) and
//! the HTTPS client of `aws-smithy-http-client` on rustls with ring, the TLS stack the rest of
//! the binary uses. The region is the secret ARN's own; the endpoint follows the SDK's settings
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER`, which the tests point at a fake).

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Why the secret could not be read. Never contains the secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(String);

/// The region of a Secrets Manager ARN (`arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`).
pub fn arn_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "secretsmanager", region, _, "secret", _] if !region.is_empty() => Some(region),
        _ => None,
    }
}

/// The `SecretString` of the secret `secret_id` (an ARN, or a name in the default region).
pub async fn secret_string(secret_id: &str) -> Result<String, SecretError> {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https);
    if let Some(region) = arn_region(secret_id) {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    let config = loader.load().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let out = client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
        let why = match &e {
            // Secrets Manager answered: its error code and message
            SdkError::ServiceError(s) => match (s.err().code(), s.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => format!("HTTP {}", s.raw().status().as_u16()),
            },
            // no credentials, unreachable endpoint, timeout, ...
            other => DisplayErrorContext(other).to_string(),
        };
        SecretError(format!("Secrets Manager GetSecretValue of {secret_id} failed: {why}"))
    })?;
    match out.secret_string() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
        _ if out.secret_binary().is_some() => {
            Err(SecretError(format!("the secret {secret_id} holds SecretBinary; store the key JSON as SecretString")))
        }
        _ => Err(SecretError(format!("the secret {secret_id} has an empty SecretString"))),
    }
}

#[cfg(test)]
mod tests {
    use super::arn_region;

    #[test]
    fn the_region_is_read_from_the_arn() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-1:123456789012:secret:gcp-key-AbCdEf"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:a:b"), Some("cn-north-1"));
        assert_eq!(arn_region("gcp-key"), None);
        assert_eq!(arn_region("arn:aws:ssm:eu-west-1:123456789012:parameter/x"), None);
    }
}
