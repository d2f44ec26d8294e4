//! Google credentials shared by the BigQuery client and the Cloud Monitoring sink.

pub mod credentials;
pub mod external_account;
pub mod storage;

pub use credentials::TokenSource;
