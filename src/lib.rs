//! pipeline-run-metrics: turns change-data-capture records of orchestrators' run tables into
//! operational metrics.
//!
//! Modules in the order a delivery flows through them:
//! [`ingress`] (HTTP router, push auth, Lambda entry and batch triggers) -> [`decode`] (delivery
//! formats, CloudEvents, Pub/Sub, Datastream, AWS DMS) -> [`pipeline`] (the per-delivery driver,
//! de-duplication, the ack table) -> [`handlers`] (trait, dispatch, built-ins, the catalogue) ->
//! [`warehouse`] (BigQuery, table references, the per-event request cache) -> [`sink`] (stdout,
//! Cloud Monitoring, OTLP).
//! Generated from the catalogue and the profiles: [`ops`] (dashboards, alert policies,
//! logs-based metrics and CloudWatch metric filters as code).
//! Shared by several stages: [`google`] (credentials: a service-account key, workload identity
//! federation from AWS, Application Default Credentials), [`aws`] (the key from AWS Secrets
//! Manager), [`retry`] (the one retry classifier and
//! backoff policy of every remote call), [`config`] (composes every component's settings, each
//! read beside its component through [`vars`]: figment sources, the prefixed-name rule, secrets),
//! [`startup`] (the one startup error and its fatal line), [`error`], [`logging`].
//! The command line ([`cli`]: `serve`, `check`, `replay`, `dashboards`, `alerts`) wires them up.

pub mod ingress;

pub mod decode;

pub mod pipeline;

pub mod handlers;

pub mod warehouse;

pub mod facts;

pub mod sink;

pub mod cli;

pub mod ops;

pub mod aws;
pub mod config;
pub mod error;
pub mod google;
pub mod logging;
pub mod redact;
pub mod retry;
pub mod startup;
pub mod vars;
