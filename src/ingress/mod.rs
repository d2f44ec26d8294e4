//! Ingress: how deliveries reach the function. [`http`] is the axum `Router` (Cloud Run, local,
//! and Lambda Function URLs / API Gateway / ALB); [`server`] serves it over HTTP/1.1 with
//! per-connection timeouts; [`lambda`] is the AWS Lambda entry (batch triggers: Kinesis, SQS,
//! Kafka; everything else through the Router); [`auth`] verifies Pub/Sub push OIDC tokens.

pub mod auth;
pub mod http;
pub mod lambda;
pub mod server;
