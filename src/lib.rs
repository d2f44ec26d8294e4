//! pipeline-run-metrics: turns change-data-capture records of orchestrators' run tables into
//! operational metrics.
//!
//! Modules in the order a delivery flows through them:
//! [`ingress`] (HTTP router, push auth, Lambda entry and batch triggers) -> [`decode`] (delivery
//! formats, CloudEvents, Pub/Sub, Datastream, AWS DMS) -> [`pipeline`] (the per-delivery driver,
//! de-duplication, the ack table) -> [`handlers`] (trait, dispatch, built-ins, the catalogue) ->
//! [`warehouse`] (BigQuery, table references, the per-event request cache) -> [`sink`] (stdout,
//! Cloud Monitoring, OTLP).
//! Shared by several stages: [`google`] (credentials), [`retry`] (the one retry classifier and
//! backoff policy of every remote call), [`config`], [`error`], [`logging`].
//! The command line ([`cli`]: `serve`, `check`, `replay`) wires them up.

pub mod ingress;

pub mod decode;

pub mod pipeline;

pub mod handlers;

pub mod warehouse;

pub mod facts;

pub mod sink;

pub mod cli;
pub mod config;
pub mod error;
pub mod google;
pub mod logging;
pub mod retry;
