//! [`TokenError`]: why no access token could be had, keeping what the token endpoint said.

use std::sync::Arc;
use std::time::Duration;

use crate::retry::{self, RetryDecision};

/// What kind of failure a [`TokenError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenErrorKind {
    /// The key or the credentials configuration is unusable.
    InvalidKey,
    /// The token endpoint refused the grant (an HTTP 4xx, e.g. `invalid_grant`).
    Refused,
    /// The token endpoint was unreachable or kept failing (5xx, 429) until the deadline.
    Unavailable,
    /// `gcp_auth` failed (no HTTP status available).
    Provider,
}

/// No access token could be had.
///
/// Opaque: ask with `is_*()`. Keeps the token endpoint's HTTP status ([`TokenError::status`]),
/// its OAuth `error` code ([`TokenError::oauth_error`], e.g. `invalid_grant`) and the
/// underlying error as `source()`. Never contains the key or a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    kind: TokenErrorKind,
    status: Option<u16>,
    oauth_error: Option<String>,
    retry_after: Option<Duration>,
    message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TokenError {
    pub(super) fn new(kind: TokenErrorKind, message: impl Into<String>) -> TokenError {
        TokenError { kind, status: None, oauth_error: None, retry_after: None, message: message.into(), source: None }
    }

    pub(super) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> TokenError {
        self.source = Some(Arc::new(source));
        self
    }

    /// The credentials configuration is unusable.
    pub(crate) fn invalid(message: impl Into<String>) -> TokenError {
        TokenError::new(TokenErrorKind::InvalidKey, message)
    }

    /// A request could not be sent or answered (retried by the transport rule).
    pub(crate) fn unreachable(message: impl Into<String>, source: reqwest::Error) -> TokenError {
        TokenError::new(TokenErrorKind::Unavailable, message).with_source(source)
    }

    /// An answer with this HTTP status: refused for good, or worth retrying, as
    /// [`retry::oauth_token`] classifies the status.
    pub(crate) fn answered(
        status: u16,
        oauth_error: Option<String>,
        retry_after: Option<Duration>,
        message: String,
    ) -> TokenError {
        let kind = match retry::oauth_token(status, oauth_error.as_deref(), retry_after) {
            RetryDecision::NonRetryable => TokenErrorKind::Refused,
            _ => TokenErrorKind::Unavailable,
        };
        TokenError { kind, status: Some(status), oauth_error, retry_after, message, source: None }
    }

    /// The same error, its message preceded by `context`.
    pub(crate) fn context(self, context: impl std::fmt::Display) -> TokenError {
        TokenError { message: format!("{context}: {}", self.message), ..self }
    }

    /// The token endpoint's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The OAuth `error` code of the token endpoint's answer (`invalid_grant`, `invalid_client`,
    /// `unauthorized_client`, …).
    pub fn oauth_error(&self) -> Option<&str> {
        self.oauth_error.as_deref()
    }

    /// The key or credentials configuration is unusable (nothing was asked).
    pub fn is_invalid_key(&self) -> bool {
        self.kind == TokenErrorKind::InvalidKey
    }

    /// The token endpoint refused the grant for good (HTTP 4xx).
    pub fn is_refused(&self) -> bool {
        self.kind == TokenErrorKind::Refused
    }

    /// The token endpoint was unreachable or failing until the retry deadline.
    pub fn is_unavailable(&self) -> bool {
        self.kind == TokenErrorKind::Unavailable
    }

    /// How a retry of the request that failed is classified ([`retry::oauth_token`]).
    pub(crate) fn decision(&self) -> RetryDecision {
        match (self.kind, self.status) {
            (TokenErrorKind::Unavailable, Some(status)) => {
                retry::oauth_token(status, self.oauth_error(), self.retry_after)
            }
            (TokenErrorKind::Unavailable, None) => retry::transport(),
            _ => RetryDecision::NonRetryable,
        }
    }
}
