//! Pub/Sub push authentication: the OIDC token Pub/Sub puts in `Authorization: Bearer ...`.
//!
//! Checked as Google documents it (protocols.md §1.7): an RS256 signature by a key of Google's
//! JWKS (cached; fetched again when a token names an unknown key id, for key rotation, at most
//! once per refresh interval whatever the outcome, without blocking requests whose key is
//! cached);
//! `iss` one of `https://accounts.google.com` / `accounts.google.com`; `aud` the configured
//! audience (by default the push endpoint URL); `email` one of the allowed service accounts with
//! `email_verified` true; `exp`/`iat` with 60 s leeway. On Cloud Run with IAM invoker checks the
//! platform does this before the request arrives; on a Lambda Function URL nothing else does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Google's signing keys of the OIDC tokens Pub/Sub pushes carry.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Why a push was refused. Its text is safe to return and log: fixed words that never repeat
/// what the token says (not its key id, not a claim, not a parser's quote of it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing bearer token")]
    MissingToken,
    /// The token is not a JWT.
    #[error("malformed token: not a JWT with a readable header")]
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
    /// No key set yet, and the last attempt to fetch one failed less than the refresh interval
    /// ago: not fetched again for this request (not the caller's fault).
    #[error("the signing keys could not be fetched recently; next attempt in at most {0} s")]
    KeysRecentlyFailed(u64),
    /// No key of the set has the token's key id (after a refresh, or while refreshes wait for
    /// the refresh interval).
    #[error("token signed with a key id that is not among the current signing keys")]
    UnknownKey,
    /// The key with the token's id cannot verify RS256.
    #[error("unusable signing key")]
    UnusableKey(#[source] jsonwebtoken::errors::Error),
    /// Signature, issuer, audience or time claims do not verify.
    #[error("invalid token: {}", token_problem(.0))]
    InvalidToken(#[source] jsonwebtoken::errors::Error),
    /// `email_verified` is not true.
    #[error("token e-mail not verified")]
    EmailNotVerified,
    /// The token's e-mail is not one of the allowed push service accounts.
    #[error("token of a service account that is not allowed to push")]
    NotAllowed,
}

/// What is wrong with a token that does not verify, in fixed words.
fn token_problem(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => "signature does not verify",
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::MissingRequiredClaim(_) => "a required claim (exp, iat, iss, aud) is missing",
        K::InvalidClaimFormat(_) | K::Json(_) => "claims of the wrong type",
        K::InvalidAlgorithm => "algorithm does not match the key",
        _ => "not a valid signed token",
    }
}

impl AuthError {
    /// The signing keys could not be had: the push may be fine (the refusal is still 401, so
    /// Pub/Sub redelivers it).
    pub fn is_keys_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable(_) | AuthError::InvalidKeys(_) | AuthError::KeysRecentlyFailed(_))
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
    /// Fetched over HTTP (Google's JWKS URL, or a test server) and cached for `ttl`. A fetch is
    /// attempted at most once per `min_refresh`, whether the last one succeeded or failed, so
    /// that neither made-up key ids nor a failing key server make every request fetch; past
    /// `ttl` the cached set is still used until a refresh succeeds.
    Url { http: reqwest::Client, url: String, ttl: Duration, min_refresh: Duration },
    /// A fixed set (tests).
    Static(JwkSet),
}

/// The cached key set and when it was fetched; never locked across a fetch.
#[derive(Clone, Default)]
struct Cache {
    set: Option<Arc<JwkSet>>,
    /// Last successful fetch.
    fetched: Option<Instant>,
    /// Last fetch attempt, successful or not.
    attempted: Option<Instant>,
}

pub struct PushVerifier {
    audience: String,
    allowed_emails: Vec<String>,
    keys: Keys,
    cache: std::sync::RwLock<Cache>,
    /// Held by the one request that fetches; requests whose key is cached never wait for it.
    fetching: tokio::sync::Mutex<()>,
}

impl PushVerifier {
    pub fn new(audience: &str, allowed_emails: Vec<String>, keys: Keys) -> Self {
        PushVerifier {
            audience: audience.to_string(),
            allowed_emails,
            keys,
            cache: std::sync::RwLock::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Cache {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A key set that has `kid` if one can be had: the cached set when it has the key (a stale
    /// one is refreshed by this request if nobody else is fetching, and used meanwhile);
    /// otherwise one fetch, at most once per `min_refresh` whatever its outcome.
    async fn jwks(&self, kid: &str) -> Result<Arc<JwkSet>, AuthError> {
        let (ttl, min_refresh) = match &self.keys {
            Keys::Static(set) => return Ok(Arc::new(set.clone())),
            Keys::Url { ttl, min_refresh, .. } => (*ttl, *min_refresh),
        };
        let may_fetch = |c: &Cache| c.attempted.is_none_or(|t| t.elapsed() >= min_refresh);
        let cached = self.cached();
        if let Some(set) = cached.set.as_ref().filter(|s| s.find(kid).is_some()) {
            let fresh = cached.fetched.is_some_and(|t| t.elapsed() < ttl);
            if !fresh
                && may_fetch(&cached)
                && let Ok(_fetching) = self.fetching.try_lock()
                && may_fetch(&self.cached())
                && let Ok(new) = self.fetch().await
                && new.find(kid).is_some()
            {
                return Ok(new);
            }
            return Ok(set.clone());
        }
        if !may_fetch(&cached) {
            return self.without_fetch(cached, min_refresh);
        }
        // Wait for a fetch in progress (bounded by its timeout), then look again: it may have
        // brought the key, or used up this interval's attempt.
        let _fetching = self.fetching.lock().await;
        let cached = self.cached();
        if let Some(set) = cached.set.as_ref().filter(|s| s.find(kid).is_some()) {
            return Ok(set.clone());
        }
        if !may_fetch(&cached) {
            return self.without_fetch(cached, min_refresh);
        }
        self.fetch().await
    }

    /// The cached set when there is one (the caller finds no key in it), else the reason why
    /// there is none.
    fn without_fetch(&self, cached: Cache, min_refresh: Duration) -> Result<Arc<JwkSet>, AuthError> {
        cached.set.ok_or(AuthError::KeysRecentlyFailed(min_refresh.as_secs().max(1)))
    }

    /// Fetches the key set (the caller holds `fetching`); records the attempt first, and the
    /// set when it came.
    async fn fetch(&self) -> Result<Arc<JwkSet>, AuthError> {
        let Keys::Url { http, url, .. } = &self.keys else { unreachable!("static keys are never fetched") };
        self.cache.write().unwrap_or_else(|p| p.into_inner()).attempted = Some(Instant::now());
        let fetched: Result<JwkSet, AuthError> = async {
            http.get(url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| AuthError::KeysUnavailable(Arc::new(e)))?
                .json()
                .await
                .map_err(|e| AuthError::InvalidKeys(Arc::new(e)))
        }
        .await;
        let set = match fetched {
            Ok(set) => Arc::new(set),
            Err(e) => {
                tracing::warn!(error = %e, "push authentication: the signing keys could not be fetched");
                return Err(e);
            }
        };
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.set = Some(set.clone());
        cache.fetched = Some(Instant::now());
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
        let set = self.jwks(&kid).await?;
        let jwk = set.find(&kid).ok_or(AuthError::UnknownKey)?;
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
