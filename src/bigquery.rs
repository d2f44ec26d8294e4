//! BigQuery access: validated table references, named query parameters, and the
//! [`Warehouse`] trait with its `gcp-bigquery-client` implementation.
//!
//! Payload values never enter SQL text: scalars are named query parameters, and table
//! variables are parsed into [`TableRef`]s whose parts must be valid identifiers before they are
//! backtick-quoted into the query.

use std::collections::BTreeMap;
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

use crate::credentials::{BIGQUERY_SCOPE, TokenSource};
use crate::error::WarehouseError;

/// A fully qualified table: `project.dataset.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

impl TableRef {
    /// Resolves a table variable like the reference implementation (handlers.md §5.1):
    /// `project.dataset.table` is used as is; `dataset.table` is read in the data project; a
    /// value without a dot becomes `<data project>.<value>`, which BigQuery reads as
    /// dataset `<data project>`, table `<value>`. Each part must be a valid identifier: project
    /// letters, digits and hyphens; dataset and table `[A-Za-z0-9_]+`.
    pub fn resolve(value: &str, data_project: &str) -> Result<TableRef, String> {
        match value.split('.').collect::<Vec<_>>().as_slice() {
            [t] => TableRef::checked(data_project, data_project, t, value),
            [d, t] => TableRef::checked(data_project, d, t, value),
            [p, d, t] => TableRef::checked(p, d, t, value),
            _ => Err(format!("'{value}' is not a table reference of the form [project.]dataset.table")),
        }
    }

    fn checked(project: &str, dataset: &str, table: &str, raw: &str) -> Result<TableRef, String> {
        let valid_project = !project.is_empty()
            && project.len() <= 63
            && project.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !project.starts_with('-');
        let valid_name =
            |s: &str| !s.is_empty() && s.len() <= 1024 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_project {
            return Err(format!("'{raw}': project '{project}' is not a valid project id (letters, digits, hyphens)"));
        }
        if !valid_name(dataset) {
            return Err(format!("'{raw}': dataset '{dataset}' is not a valid identifier ([A-Za-z0-9_]+)"));
        }
        if !valid_name(table) {
            return Err(format!("'{raw}': table '{table}' is not a valid identifier ([A-Za-z0-9_]+)"));
        }
        Ok(TableRef { project: project.into(), dataset: dataset.into(), table: table.into() })
    }

    /// The backtick-quoted reference for SQL text. Safe because every part was validated.
    pub fn sql(&self) -> String {
        format!("`{}.{}.{}`", self.project, self.dataset, self.table)
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.project, self.dataset, self.table)
    }
}

/// A named query parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    String(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Rendered `YYYY-MM-DD HH:MM:SS.ffffff+00:00`.
    Timestamp(chrono::DateTime<chrono::Utc>),
    Date(chrono::NaiveDate),
}

impl Param {
    fn bq_type(&self) -> &'static str {
        match self {
            Param::String(_) => "STRING",
            Param::Bool(_) => "BOOL",
            Param::Int(_) => "INT64",
            Param::Float(_) => "FLOAT64",
            Param::Timestamp(_) => "TIMESTAMP",
            Param::Date(_) => "DATE",
        }
    }

    fn bq_value(&self) -> String {
        match self {
            Param::String(s) => s.clone(),
            Param::Bool(b) => b.to_string(),
            Param::Int(i) => i.to_string(),
            Param::Float(f) => f.to_string(),
            Param::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
            Param::Date(d) => d.format("%Y-%m-%d").to_string(),
        }
    }
}

/// One result cell, typed from the result schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Float(f64),
    Int(i64),
    Bool(bool),
    Text(String),
}

impl Cell {
    /// The cell as a label value. NULL becomes `"None"`, the reference's rendering of a NULL
    /// `agent_id` (handlers.md §7.5), for every label taken from a column.
    pub fn label(&self) -> String {
        match self {
            Cell::Null => "None".into(),
            Cell::Float(f) => f.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Bool(b) => if *b { "True" } else { "False" }.into(),
            Cell::Text(s) => s.clone(),
        }
    }
}

/// Result rows: column name -> cell, in result order.
pub type Row = BTreeMap<String, Cell>;

#[async_trait::async_trait]
pub trait Warehouse: Send + Sync {
    /// Whether the table exists.
    async fn table_exists(&self, table: &TableRef) -> Result<bool, WarehouseError>;
    /// Runs a standard-SQL query with named parameters and returns all rows.
    async fn query(&self, sql: &str, params: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError>;
}

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

    async fn run_query(&self, sql: &str, params: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
        let mut req = QueryRequest::new(sql);
        req.parameter_mode = Some("NAMED".into());
        req.query_parameters = Some(params.iter().map(|(n, v)| to_query_parameter(n, v)).collect());
        let wait_ms = self.timeout.as_millis().min(10_000) as i32;
        req.timeout_ms = Some(wait_ms);
        let resp = self.client.job().query(&self.project, req).await.map_err(classify)?;
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
            let r = self.client.job().get_query_results(&self.project, &job_id, params).await.map_err(classify)?;
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

fn check_errors(errors: Option<&[gcp_bigquery_client::model::error_proto::ErrorProto]>) -> Result<(), WarehouseError> {
    let Some(first) = errors.and_then(|e| e.first()) else { return Ok(()) };
    let message = first.message.clone().unwrap_or_default();
    Err(match first.reason.as_deref() {
        Some("notFound") => WarehouseError::NotFound(message),
        Some("backendError" | "internalError" | "rateLimitExceeded" | "timeout" | "jobBackendError") => {
            WarehouseError::Unavailable(message)
        }
        _ => WarehouseError::Rejected(message),
    })
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

/// Maps a client error to the taxonomy: 404 -> not found; 408, 429, 5xx, transport -> unavailable;
/// other HTTP errors -> rejected.
fn classify(e: BQError) -> WarehouseError {
    match e {
        BQError::ResponseError { error } => {
            let reason = error.error.errors.first().and_then(|m| m.get("reason")).cloned().unwrap_or_default();
            let msg = format!("HTTP {}: {}", error.error.code, error.error.message);
            match error.error.code {
                404 => WarehouseError::NotFound(msg),
                408 | 429 | 500..=599 => WarehouseError::Unavailable(msg),
                403 if reason == "rateLimitExceeded" || reason == "quotaExceeded" => WarehouseError::Unavailable(msg),
                _ => WarehouseError::Rejected(msg),
            }
        }
        BQError::RequestError(e) => WarehouseError::Unavailable(format!("request failed: {e}")),
        other => WarehouseError::Unavailable(other.to_string()),
    }
}

#[async_trait::async_trait]
impl Warehouse for BigQuery {
    async fn table_exists(&self, t: &TableRef) -> Result<bool, WarehouseError> {
        let call = self.client.table().get(&t.project, &t.dataset, &t.table, Some(vec!["tableReference"]));
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
    fn table_resolution_like_the_reference() {
        let t = TableRef::resolve("tmp_abertta.processable_claims_abertta_20251105_171427", "test-project").unwrap();
        assert_eq!(t.sql(), "`test-project.tmp_abertta.processable_claims_abertta_20251105_171427`");
        let t = TableRef::resolve("other-proj.ds.t", "test-project").unwrap();
        assert_eq!(t.to_string(), "other-proj.ds.t");
        // no dot: `<data project>.<value>`, which BigQuery reads as dataset `<data project>`
        // (only valid when the data project id is also a valid dataset name)
        let t = TableRef::resolve("t1", "dataproj").unwrap();
        assert_eq!(t.to_string(), "dataproj.dataproj.t1");
    }

    #[test]
    fn invalid_identifiers_are_rejected() {
        for bad in [
            "ds.t`; DROP TABLE x; --",
            "ds.t where 1=1",
            "a.b.c.d",
            "ds.",
            ".t",
            "proj_with_underscore.ds.t",
            "-proj.ds.t",
            "ds.t-with-hyphen",
            "ds.t\n",
            "",
            "t1",
        ] {
            assert!(TableRef::resolve(bad, "test-project").is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn param_rendering() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2024, 1, 15, 10, 10, 0).unwrap();
        assert_eq!(Param::Timestamp(t).bq_value(), "2024-01-15 10:10:00.000000+00:00");
        assert_eq!(Param::Date(t.date_naive()).bq_value(), "2024-01-15");
        assert_eq!(Param::Bool(true).bq_type(), "BOOL");
    }

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

    #[test]
    fn null_label_is_none() {
        assert_eq!(Cell::Null.label(), "None");
        assert_eq!(Cell::Int(3).label(), "3");
    }
}
