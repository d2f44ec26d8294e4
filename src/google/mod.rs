//! Google credentials shared by the BigQuery client and the Cloud Monitoring sink.

pub mod credentials;
pub mod storage;

pub use credentials::TokenSource;
