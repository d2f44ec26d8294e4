//! BigQuery through `gcp-bigquery-client` (stack.md §5): `tables.get` for existence checks and
//! `jobs.query` / `jobs.getQueryResults` for queries, against BigQuery or an emulator.
//!
//! Failed calls are classified by [`crate::retry::bigquery`] (the error's `errors[0].reason`,
//! else its HTTP status) and retryable ones are retried briefly with the shared backoff
//! (`BigQuery::retry_policy`). The client does not expose response headers, so `Retry-After` cannot be read
//! here.

use std::sync::Arc;
use std::time::Duration;

use gcp_bigquery_client::Client;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
use gcp_bigquery_client::model::query_parameter::QueryParameter;
use gcp_bigquery_client::model::query_parameter_type::QueryParameterType;
use gcp_bigquery_client::model::query_parameter_value::QueryParameterValue;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_row::TableRow;

use super::{Cell, Param, Row, TableRef, Warehouse, WarehouseError};
use crate::google::credentials::{BIGQUERY_SCOPE, TokenSource};
use crate::retry::{self, Policy, RetryDecision};

/// Static bearer token for emulators (they ignore it).
#[derive(Clone)]
struct StaticToken(String);

#[async_trait::async_trait]
impl gcp_bigquery_client::auth::Authenticator for StaticToken {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok(self.0.clone())
    }
}

/// Tokens from the shared [`TokenSource`] (production).
#[derive(Clone)]
struct Tokens(Arc<dyn TokenSource>);

#[async_trait::async_trait]
impl gcp_bigquery_client::auth::Authenticator for Tokens {
    async fn access_token(&self) -> Result<String, BQError> {
        self.0
            .token(&[BIGQUERY_SCOPE])
            .await
            .map_err(|e| BQError::InvalidApplicationDefaultCredentialsAuthenticator(std::io::Error::other(e)))
    }
}

/// BigQuery through `gcp-bigquery-client`.
pub struct BigQuery {
    client: Client,
    /// The project jobs run in (the data project).
    project: String,
    timeout: Duration,
}

impl BigQuery {
    /// Against an emulator at `host:port` (no credentials).
    pub async fn emulator(
        host: &str,
        project: &str,
        timeout: Duration,
        http: reqwest::Client,
    ) -> Result<BigQuery, String> {
        let base = if host.starts_with("http://") || host.starts_with("https://") {
            host.trim_end_matches('/').to_string()
        } else {
            format!("http://{host}")
        };
        let mut b = gcp_bigquery_client::client_builder::ClientBuilder::new();
        b.with_client(http).with_v2_base_url(format!("{base}/bigquery/v2"));
        let client =
            b.build_from_authenticator(Arc::new(StaticToken("emulator".into()))).await.map_err(|e| e.to_string())?;
        Ok(BigQuery { client, project: project.into(), timeout })
    }

    /// Against BigQuery, with tokens from the shared credentials.
    pub async fn production(
        tokens: Arc<dyn TokenSource>,
        project: &str,
        timeout: Duration,
        http: reqwest::Client,
    ) -> Result<BigQuery, String> {
        let mut b = gcp_bigquery_client::client_builder::ClientBuilder::new();
        b.with_client(http);
        let client = b.build_from_authenticator(Arc::new(Tokens(tokens))).await.map_err(|e| e.to_string())?;
        Ok(BigQuery { client, project: project.into(), timeout })
    }

    /// Retries of one call: a short second chance (100 ms doubling to 1 s, within 2 s or a
    /// quarter of the query timeout, whichever is less). Longer outages are left to Pub/Sub's
    /// redelivery, whose backoff is built for them (protocols.md §1.4), so that an event does
    /// not outlive the push's ack deadline (10 s by default) retrying.
    fn retry_policy(&self) -> Policy {
        Policy {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            deadline: Duration::from_secs(2).min(self.timeout / 4),
        }
    }

    async fn run_query(&self, sql: &str, params: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
        let mut req = QueryRequest::new(sql);
        req.parameter_mode = Some("NAMED".into());
        req.query_parameters = Some(params.iter().map(|(n, v)| to_query_parameter(n, v)).collect());
        let wait_ms = self.timeout.as_millis().min(10_000) as i32;
        req.timeout_ms = Some(wait_ms);
        let resp = self
            .retry_policy()
            .retry(|| self.client.job().query(&self.project, req.clone()), decision)
            .await
            .map_err(classify)?;
        check_errors(resp.errors.as_deref())?;
        let mut schema = resp.schema.and_then(|s| s.fields).unwrap_or_default();
        let mut rows = Vec::new();
        let mut complete = resp.job_complete.unwrap_or(true);
        let mut page_token = resp.page_token;
        append_rows(&mut rows, &schema, resp.rows.unwrap_or_default())?;
        let job = resp.job_reference;
        // Poll until the job is complete, then follow the result pages.
        while !complete || page_token.is_some() {
            let Some(job_ref) = job.as_ref() else {
                return Err(WarehouseError::Unavailable("incomplete query without a job reference".into()));
            };
            let job_id = job_ref.job_id.clone().unwrap_or_default();
            let params = GetQueryResultsParameters {
                location: job_ref.location.clone(),
                page_token: if complete { page_token.clone() } else { None },
                timeout_ms: Some(wait_ms),
                ..Default::default()
            };
            let r = self
                .retry_policy()
                .retry(|| self.client.job().get_query_results(&self.project, &job_id, params.clone()), decision)
                .await
                .map_err(classify)?;
            check_errors(r.errors.as_deref())?;
            let now_complete = r.job_complete.unwrap_or(true);
            if now_complete && !complete {
                // first complete answer: it carries the schema and the first page
                schema = r.schema.and_then(|s| s.fields).unwrap_or_default();
                rows.clear();
            }
            if now_complete {
                append_rows(&mut rows, &schema, r.rows.unwrap_or_default())?;
                page_token = r.page_token;
            }
            complete = now_complete;
        }
        Ok(rows)
    }
}

fn to_query_parameter(name: &str, v: &Param) -> QueryParameter {
    QueryParameter {
        name: Some(name.to_string()),
        parameter_type: Some(QueryParameterType { r#type: v.bq_type().into(), ..Default::default() }),
        parameter_value: Some(QueryParameterValue { value: Some(v.bq_value()), ..Default::default() }),
    }
}

/// Errors inside an HTTP 200 (`QueryResponse.errors`; bqemulator puts SQL errors there, real
/// BigQuery answers them with HTTP errors): the first error decides, like an HTTP error.
fn check_errors(errors: Option<&[gcp_bigquery_client::model::error_proto::ErrorProto]>) -> Result<(), WarehouseError> {
    let Some(first) = errors.and_then(|e| e.first()) else { return Ok(()) };
    let message = first.message.clone().unwrap_or_default();
    Err(warehouse_error(None, first.reason.as_deref(), message))
}

fn append_rows(out: &mut Vec<Row>, schema: &[TableFieldSchema], rows: Vec<TableRow>) -> Result<(), WarehouseError> {
    use gcp_bigquery_client::model::field_type::FieldType as F;
    for r in rows {
        let cells = r.columns.unwrap_or_default();
        let mut row = Row::new();
        for (i, field) in schema.iter().enumerate() {
            let raw = cells.get(i).and_then(|c| c.value.clone());
            let cell = match raw {
                None | Some(serde_json::Value::Null) => Cell::Null,
                Some(serde_json::Value::String(s)) => match field.r#type {
                    F::Float | F::Float64 | F::Numeric | F::Bignumeric => {
                        Cell::Float(s.parse().map_err(|_| bad_cell(&field.name, &s))?)
                    }
                    F::Integer | F::Int64 => Cell::Int(s.parse().map_err(|_| bad_cell(&field.name, &s))?),
                    F::Boolean | F::Bool => Cell::Bool(s.eq_ignore_ascii_case("true")),
                    _ => Cell::Text(s),
                },
                Some(other) => Cell::Text(other.to_string()),
            };
            row.insert(field.name.clone(), cell);
        }
        out.push(row);
    }
    Ok(())
}

fn bad_cell(col: &str, v: &str) -> WarehouseError {
    WarehouseError::Rejected(format!("column {col}: cannot parse '{v}'"))
}

/// How a retry of a failed client call is classified ([`retry::bigquery`]). Errors that are
/// not answers of BigQuery (no token, an unreadable answer) are not retried here.
fn decision(e: &BQError) -> RetryDecision {
    match e {
        BQError::ResponseError { error } => {
            let reason = error.error.errors.first().and_then(|m| m.get("reason")).map(String::as_str);
            retry::bigquery(u16::try_from(error.error.code).ok(), reason, None)
        }
        BQError::RequestError(_) => retry::transport(),
        _ => RetryDecision::NonRetryable,
    }
}

/// The taxonomy of a BigQuery error (`status` `None` for errors inside an HTTP 200):
/// `notFound` or 404 -> not found; what [`retry::bigquery`] calls retryable -> unavailable;
/// `quotaExceeded` -> unavailable too (not retried at once, but "wait 10 minutes or longer"
/// makes a later redelivery succeed); anything else -> rejected.
fn warehouse_error(status: Option<u16>, reason: Option<&str>, message: String) -> WarehouseError {
    if reason == Some("notFound") || (reason.is_none_or(str::is_empty) && status == Some(404)) {
        return WarehouseError::NotFound(message);
    }
    if reason == Some("quotaExceeded") || retry::bigquery(status, reason, None).is_retryable() {
        return WarehouseError::Unavailable(message);
    }
    WarehouseError::Rejected(message)
}

/// Maps a client error to the taxonomy ([`warehouse_error`]); a transport failure or another
/// client error (no token, an unreadable answer) is unavailable.
fn classify(e: BQError) -> WarehouseError {
    match e {
        BQError::ResponseError { error } => {
            let reason = error.error.errors.first().and_then(|m| m.get("reason")).cloned();
            // BigQuery's message already says what happened ("Not found: Table p:d.t"): the
            // status follows it, so that the variant's prefix does not repeat it
            let msg = format!("{} (HTTP {})", error.error.message.trim(), error.error.code);
            warehouse_error(u16::try_from(error.error.code).ok(), reason.as_deref(), msg)
        }
        BQError::RequestError(e) => {
            WarehouseError::Unavailable(format!("request failed: {}", crate::error::transport(&e)))
        }
        other => WarehouseError::Unavailable(crate::error::chain(&other)),
    }
}

#[async_trait::async_trait]
impl Warehouse for BigQuery {
    async fn table_exists(&self, t: &TableRef) -> Result<bool, WarehouseError> {
        let call = self.retry_policy().retry(
            || self.client.table().get(t.project(), t.dataset(), t.table(), Some(vec!["tableReference"])),
            decision,
        );
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(WarehouseError::Unavailable(format!("tables.get {t} timed out after {:?}", self.timeout))),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => match classify(e) {
                WarehouseError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn query(&self, sql: &str, params: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
        match tokio::time::timeout(self.timeout, self.run_query(sql, params)).await {
            Err(_) => Err(WarehouseError::Unavailable(format!("query timed out after {:?}", self.timeout))),
            Ok(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_errors_inside_http_200_are_errors() {
        use gcp_bigquery_client::model::error_proto::ErrorProto;
        let e =
            |reason: &str| ErrorProto { reason: Some(reason.into()), message: Some("m".into()), ..Default::default() };
        assert!(matches!(check_errors(Some(&[e("notFound")])), Err(WarehouseError::NotFound(_))));
        assert!(matches!(check_errors(Some(&[e("invalidQuery")])), Err(WarehouseError::Rejected(_))));
        assert!(matches!(check_errors(Some(&[e("backendError")])), Err(WarehouseError::Unavailable(_))));
        assert!(check_errors(Some(&[])).is_ok());
        assert!(check_errors(None).is_ok());
    }

    /// BigQuery's 404 body (the shape of https://cloud.google.com/bigquery/docs/error-messages,
    /// `notFound`; the emulator answers the same) becomes one text: BigQuery's message, then
    /// the status, without "not found: Not found".
    #[test]
    fn a_404_is_said_once() {
        let body = r#"{"error":{"code":404,"message":"Not found: Table p:ds.t","errors":[{"message":"Not found: Table p:ds.t","domain":"global","reason":"notFound"}],"status":"NOT_FOUND"}}"#;
        let e = classify(BQError::ResponseError { error: serde_json::from_str(body).unwrap() });
        assert_eq!(e, WarehouseError::NotFound("Not found: Table p:ds.t (HTTP 404)".into()));
        assert_eq!(e.to_string(), "Not found: Table p:ds.t (HTTP 404)");
    }

    /// A refused connection (a real one, to port 1) names its cause once.
    #[tokio::test]
    async fn a_refused_connection_names_its_cause_once() {
        let e =
            reqwest::Client::new().get("http://127.0.0.1:1/bigquery/v2/projects/p/queries").send().await.unwrap_err();
        let text = classify(BQError::RequestError(e)).to_string();
        assert!(
            text.starts_with("BigQuery unavailable: request failed: error sending request to http://127.0.0.1:1: "),
            "{text}"
        );
        assert_eq!(text.to_lowercase().matches("connection refused").count(), 1, "{text}");
        assert_eq!(text.matches("error sending request").count(), 1, "{text}");
    }

    /// (HTTP status, errors[0].reason) -> taxonomy; the bodies are the real ones of
    /// fake-texts.md §4.1.
    #[test]
    fn http_errors_map_to_the_taxonomy() {
        use WarehouseError::{NotFound, Rejected, Unavailable};
        type Variant = fn(String) -> WarehouseError;
        let table: &[(Option<u16>, Option<&str>, Variant)] = &[
            (Some(404), Some("notFound"), NotFound),
            (Some(404), None, NotFound),
            (Some(400), Some("invalidQuery"), Rejected),
            (Some(403), Some("accessDenied"), Rejected),
            (Some(403), Some("rateLimitExceeded"), Unavailable),
            (Some(403), Some("quotaExceeded"), Unavailable),
            (Some(500), Some("backendError"), Unavailable),
            (Some(503), Some("backendError"), Unavailable),
            (Some(500), Some("internalError"), Unavailable),
            (Some(503), None, Unavailable),
            (Some(401), None, Rejected),
            (None, Some("jobBackendError"), Unavailable),
            (None, Some("invalidQuery"), Rejected),
        ];
        for &(status, reason, want) in table {
            assert_eq!(warehouse_error(status, reason, "m".into()), want("m".into()), "{status:?} {reason:?}");
        }
    }
}
