//! Pub/Sub push authentication: the OIDC token Pub/Sub puts in `Authorization: Bearer ...`.
//!
//! Checked as Google documents it (protocols.md §1.7): an RS256 signature by a key of Google's
//! JWKS (cached, fetched again once when a token names an unknown key id, for key rotation);
//! `iss` one of `https://accounts.google.com` / `accounts.google.com`; `aud` the configured
//! audience (by default the push endpoint URL); `email` one of the allowed service accounts with
//! `email_verified` true; `exp`/`iat` with 60 s leeway. On Cloud Run with IAM invoker checks the
//! platform does this before the request arrives; on a Lambda Function URL nothing else does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::RwLock;

/// Google's signing keys of the OIDC tokens Pub/Sub pushes carry.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Why a push was refused. Its text is safe to return and log: it never contains the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing bearer token")]
    MissingToken,
    /// The token is not a JWT.
    #[error("malformed token: {0}")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    /// The token is not signed with RS256.
    #[error("unexpected signing algorithm {0:?}")]
    UnexpectedAlgorithm(Algorithm),
    /// The token header names no key id.
    #[error("token without key id")]
    NoKeyId,
    /// Google's keys could not be fetched (not the caller's fault).
    #[error("cannot fetch the signing keys: {0}")]
    KeysUnavailable(#[source] Arc<reqwest::Error>),
    /// Google's key set could not be read (not the caller's fault).
    #[error("invalid signing keys: {0}")]
    InvalidKeys(#[source] Arc<reqwest::Error>),
    /// No key of the set has the token's key id (after one refresh).
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// The key with the token's id cannot verify RS256.
    #[error("unusable signing key: {0}")]
    UnusableKey(#[source] jsonwebtoken::errors::Error),
    /// Signature, issuer, audience or time claims do not verify.
    #[error("invalid token: {0}")]
    InvalidToken(#[source] jsonwebtoken::errors::Error),
    /// `email_verified` is not true.
    #[error("token e-mail not verified")]
    EmailNotVerified,
    /// The token's e-mail is not one of the allowed push service accounts.
    #[error("token of a service account that is not allowed to push")]
    NotAllowed,
}

impl AuthError {
    /// The signing keys could not be had: the push may be fine (the refusal is still 401, so
    /// Pub/Sub redelivers it).
    pub fn is_keys_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable(_) | AuthError::InvalidKeys(_))
    }

    /// The request carried no token at all.
    pub fn is_missing_token(&self) -> bool {
        matches!(self, AuthError::MissingToken)
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
struct PushClaims {
    #[serde(default)]
    email: String,
    #[serde(default)]
    email_verified: bool,
}

/// Where the signing keys come from.
pub enum Keys {
    /// Fetched over HTTP (Google's JWKS URL, or a test server) and cached for `ttl`; a token
    /// naming an unknown key id forces a new fetch at most once per `min_refresh`, so that
    /// made-up key ids cannot make every request fetch the keys.
    Url { http: reqwest::Client, url: String, ttl: Duration, min_refresh: Duration },
    /// A fixed set (tests).
    Static(JwkSet),
}

pub struct PushVerifier {
    audience: String,
    allowed_emails: Vec<String>,
    keys: Keys,
    cache: RwLock<Option<(Arc<JwkSet>, Instant)>>,
}

impl PushVerifier {
    pub fn new(audience: &str, allowed_emails: Vec<String>, keys: Keys) -> Self {
        PushVerifier { audience: audience.to_string(), allowed_emails, keys, cache: RwLock::new(None) }
    }

    /// The key set: cached, or fetched when the cache is older than the TTL, or when `stale` (the
    /// set a caller saw without the key it needs) is still the cached one.
    async fn jwks(&self, stale: Option<&Arc<JwkSet>>) -> Result<Arc<JwkSet>, AuthError> {
        let (http, url, ttl, min_refresh) = match &self.keys {
            Keys::Static(set) => return Ok(Arc::new(set.clone())),
            Keys::Url { http, url, ttl, min_refresh } => (http, url, *ttl, *min_refresh),
        };
        if stale.is_none()
            && let Some((set, at)) = self.cache.read().await.as_ref()
            && at.elapsed() < ttl
        {
            return Ok(set.clone());
        }
        let mut cache = self.cache.write().await;
        if let Some((set, at)) = cache.as_ref() {
            let fresh = at.elapsed() < ttl;
            match stale {
                // another request refreshed it since this caller looked: use that
                Some(seen) if !Arc::ptr_eq(seen, set) && fresh => return Ok(set.clone()),
                // forced refreshes are rate-limited
                Some(_) if at.elapsed() < min_refresh => return Ok(set.clone()),
                None if fresh => return Ok(set.clone()),
                _ => {}
            }
        }
        let set: JwkSet = http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| AuthError::KeysUnavailable(Arc::new(e)))?
            .json()
            .await
            .map_err(|e| AuthError::InvalidKeys(Arc::new(e)))?;
        let set = Arc::new(set);
        *cache = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    /// Verifies the `Authorization` header value; returns the caller's e-mail.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<String, AuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::MissingToken)?;
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::UnexpectedAlgorithm(header.alg));
        }
        let kid = header.kid.ok_or(AuthError::NoKeyId)?;
        let mut set = self.jwks(None).await?;
        if set.find(&kid).is_none() {
            set = self.jwks(Some(&set)).await?; // key rotation: fetch once more
        }
        let jwk = set.find(&kid).ok_or_else(|| AuthError::UnknownKey(kid.clone()))?;
        let key = DecodingKey::from_jwk(jwk).map_err(AuthError::UnusableKey)?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[&self.audience]);
        v.set_issuer(&ISSUERS);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
        v.leeway = 60;
        let claims = jsonwebtoken::decode::<PushClaims>(token, &key, &v).map_err(AuthError::InvalidToken)?.claims;
        if !claims.email_verified {
            return Err(AuthError::EmailNotVerified);
        }
        if !self.allowed_emails.iter().any(|e| e == &claims.email) {
            return Err(AuthError::NotAllowed);
        }
        Ok(claims.email)
    }
}
