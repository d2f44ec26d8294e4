//! The BigQuery client's rough edges that bqemulator cannot show (it always answers
//! `jobComplete: true` and puts SQL errors in HTTP 200): an incomplete job is polled with
//! `getQueryResults` until complete, result pages are followed, a slow answer times out as a
//! transient error, and errors inside an HTTP 200 are errors. Against an in-process fake of the
//! REST API that records what the client sent.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fakes::bigquery_api::{FakeBigQuery, start};
use pipeline_run_metrics::warehouse::WarehouseError;
use pipeline_run_metrics::warehouse::{BigQuery, Cell, Param, Warehouse};

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
