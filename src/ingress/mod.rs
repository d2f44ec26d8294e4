//! Ingress: how deliveries reach the function. [`http`] is the axum `Router` (Cloud Run, local,
//! and Lambda Function URLs through lambda_http); [`auth`] verifies Pub/Sub push OIDC tokens.

pub mod auth;
pub mod http;
