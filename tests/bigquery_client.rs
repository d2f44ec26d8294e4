//! The BigQuery client's rough edges that bqemulator cannot show (it always answers
//! `jobComplete: true` and puts SQL errors in HTTP 200): an incomplete job is polled with
//! `getQueryResults` until complete, result pages are followed, a slow answer times out as a
//! transient error, and errors inside an HTTP 200 are errors. Against an in-process fake of the
//! REST API that records what the client sent and answers HTTP errors with BigQuery's real
//! bodies (sources in /work/research/fake-texts.md §4.1): retryable reasons are retried,
//! `quotaExceeded` and request errors are not.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fakes::bigquery_api::{FakeBigQuery, bq_error, start};
use pipeline_run_metrics::warehouse::WarehouseError;
use pipeline_run_metrics::warehouse::{BigQuery, Cell, Param, Warehouse};
use serde_json::Value;

#[tokio::test]
async fn an_incomplete_job_is_polled_and_every_page_read() {
    let fake = FakeBigQuery { incomplete: Arc::new(Mutex::new(2)), ..Default::default() };
    let host = start(fake.clone()).await;
    let bq = BigQuery::emulator(&host, "data-proj", Duration::from_secs(10), reqwest::Client::new()).await.unwrap();
    let rows =
        bq.query("SELECT status, v FROM t WHERE x = @x", &[("x".into(), Param::String("y".into()))]).await.unwrap();
    let got: Vec<(Cell, Cell)> = rows.iter().map(|r| (r["status"].clone(), r["v"].clone())).collect();
    assert_eq!(
        got,
        vec![
            (Cell::Text("A".into()), Cell::Float(1.5)),
            (Cell::Text("B".into()), Cell::Null),
            (Cell::Text("C".into()), Cell::Float(0.30000000000000004)),
        ]
    );
    assert_eq!(
        *fake.calls.lock().unwrap(),
        vec![
            "query data-proj \"NAMED\"",
            "results data-proj job_1 page=",
            "results data-proj job_1 page=",
            "results data-proj job_1 page=",
            "results data-proj job_1 page=p2",
        ]
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let fake = FakeBigQuery { delay: Duration::from_secs(3), ..Default::default() };
    let host = start(fake).await;
    let bq = BigQuery::emulator(&host, "p", Duration::from_millis(300), reqwest::Client::new()).await.unwrap();
    let e = bq.query("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(e, WarehouseError::Unavailable(ref m) if m.contains("timed out")), "{e:?}");
}

#[tokio::test]
async fn an_error_inside_an_http_200_is_an_error() {
    let host = start(FakeBigQuery { error_in_200: true, ..Default::default() }).await;
    let bq = BigQuery::emulator(&host, "p", Duration::from_secs(5), reqwest::Client::new()).await.unwrap();
    let e = bq.query("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(e, WarehouseError::Rejected("Syntax error: Unexpected keyword".into()));
}

/// (answer of the first `jobs.query`, `jobs.query` calls made, result). The bodies are BigQuery's
/// (fake-texts.md §4.1); a retryable one is followed by the normal answer.
#[tokio::test]
async fn http_errors_are_classified_and_retryable_ones_retried() {
    // mozilla/bigquery-etl#1698 (the `project:dataset.table` form)
    let not_found =
        bq_error(404, "NOT_FOUND", "notFound", "Not found: Table data-proj:ds.t was not found in location US");
    // metabase/metabase#20514 (its `location`/`locationType` fields are left out)
    let invalid =
        bq_error(400, "INVALID_ARGUMENT", "invalidQuery", "Unrecognized name: `beeper_api_db.users` at [4:27]");
    // the troubleshooting doc's example; the rest of the quota message is UNKNOWN
    let quota = bq_error(403, "PERMISSION_DENIED", "quotaExceeded", "Quota exceeded: UNKNOWN wording of the rest");
    // the troubleshooting doc's example message
    let rate = bq_error(
        403,
        "PERMISSION_DENIED",
        "rateLimitExceeded",
        "Exceeded rate limits: too many table update operations for this table",
    );
    // reason backendError is documented for 500/503; its message text is UNKNOWN
    let backend = bq_error(503, "UNAVAILABLE", "backendError", "UNKNOWN wording of a backendError");
    type Want = fn(&Result<Vec<pipeline_run_metrics::warehouse::Row>, WarehouseError>) -> bool;
    let table: Vec<((u16, Value), usize, Want)> = vec![
        (not_found, 1, |r| matches!(r, Err(WarehouseError::NotFound(m)) if m.contains("was not found"))),
        (invalid, 1, |r| matches!(r, Err(WarehouseError::Rejected(m)) if m.contains("Unrecognized name"))),
        (quota, 1, |r| matches!(r, Err(WarehouseError::Unavailable(m)) if m.contains("Quota exceeded"))),
        (rate, 2, |r| r.as_ref().is_ok_and(|rows| rows.len() == 3)),
        (backend, 2, |r| r.as_ref().is_ok_and(|rows| rows.len() == 3)),
    ];
    for (answer, calls, want) in table {
        let fake = FakeBigQuery::default();
        fake.fail_next.lock().unwrap().push_back(answer.clone());
        let host = start(fake.clone()).await;
        let bq = BigQuery::emulator(&host, "data-proj", Duration::from_secs(10), reqwest::Client::new()).await.unwrap();
        let r = bq.query("SELECT status, v FROM t", &[]).await;
        assert!(want(&r), "{answer:?}: {r:?}");
        let queries = fake.calls.lock().unwrap().iter().filter(|c| c.starts_with("query")).count();
        assert_eq!(queries, calls, "{answer:?}");
    }
}
