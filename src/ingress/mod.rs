//! Ingress: how deliveries reach the function. [`http`] is the axum `Router` (Cloud Run, local,
//! and Lambda Function URLs through lambda_http); [`server`] serves it over HTTP/1.1 with
//! per-connection timeouts; [`auth`] verifies Pub/Sub push OIDC tokens.

pub mod auth;
pub mod http;
pub mod server;
