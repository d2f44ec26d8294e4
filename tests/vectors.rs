//! Every test vector of handlers.md, through HTTP against the BigQuery emulator.
//!
//! Fixtures live in `tests/vectors/*.toml`. Each `[[vector]]` names the handlers it runs (like
//! the reference's `dispatch_event`), the tables it creates (`[tables.<alias>]` shared by a file,
//! `[vector.tables.<alias>]` per vector, `missing = [..]` to leave a shared one out), the event's
//! variables (`"@alias"` becomes the fully qualified name of that table, which exists only if
//! defined) and every point it must emit, no more and no fewer.

mod common;

use std::collections::BTreeMap;

use common::METRIC_PROJECT;
use common::app::{Point, TestApp};
use common::bigquery::Bq;
use common::fixtures::record;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct TableFx {
    columns: BTreeMap<String, String>,
    #[serde(default)]
    rows: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tables: BTreeMap<String, TableFx>,
    vector: Vec<Vector>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    spec: String,
    handlers: Vec<String>,
    pipeline_uuid: String,
    #[serde(default = "completed")]
    status: String,
    source_timestamp: String,
    variables: Value,
    #[serde(default)]
    tables: BTreeMap<String, TableFx>,
    #[serde(default)]
    missing: Vec<String>,
    #[serde(default = "no_content")]
    expect_status: u16,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    error_field: Option<String>,
    #[serde(default)]
    expect: Vec<Expect>,
}

fn completed() -> String {
    "COMPLETED".into()
}
fn no_content() -> u16 {
    204
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Expect {
    metric: String,
    value: f64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn all_vectors() -> Vec<(String, BTreeMap<String, TableFx>, Vector)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let text = std::fs::read_to_string(&p).unwrap();
        let f: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        for v in f.vector {
            out.push((p.display().to_string(), f.tables.clone(), v));
        }
    }
    out
}

fn substitute(v: &Value, tables: &BTreeMap<String, String>) -> Value {
    match v {
        Value::String(s) if s.starts_with('@') => {
            Value::String(tables.get(&s[1..]).unwrap_or_else(|| panic!("unknown table alias {s}")).clone())
        }
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), substitute(v, tables))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, tables)).collect()),
        other => other.clone(),
    }
}

fn key(p: &Point) -> (String, Vec<(String, String)>) {
    (p.name.clone(), p.labels.clone().into_iter().collect())
}

async fn run(name: &str) {
    let all = all_vectors();
    let (file, shared, v) = all.iter().find(|(_, _, v)| v.name == name).unwrap_or_else(|| panic!("no vector {name}"));
    let bq = Bq::default();
    let ds = bq.dataset(name).await;
    // every alias the variables mention gets a name; only defined ones get a table
    let mut names = BTreeMap::new();
    fn aliases(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.starts_with('@') => out.push(s[1..].to_string()),
            Value::Object(o) => o.values().for_each(|v| aliases(v, out)),
            Value::Array(a) => a.iter().for_each(|v| aliases(v, out)),
            _ => {}
        }
    }
    let mut mentioned = Vec::new();
    aliases(&v.variables, &mut mentioned);
    for a in &mentioned {
        names.insert(a.clone(), format!("{}.{ds}.{a}", common::DATA_PROJECT));
    }
    let mut tables = shared.clone();
    tables.extend(v.tables.clone());
    for m in &v.missing {
        assert!(tables.remove(m).is_some(), "{name}: missing = {m} is not a shared table");
    }
    for (alias, t) in &tables {
        bq.table(&ds, alias, &t.columns, &t.rows).await;
    }
    let handlers: Vec<&str> = v.handlers.iter().map(String::as_str).collect();
    let app = TestApp::start(Some(&handlers)).await;
    let vars = substitute(&v.variables, &names);
    let ans = app.push(&record(&v.pipeline_uuid, &v.status, &v.source_timestamp, vars)).await;
    bq.drop_dataset(&ds).await;

    let ctx = format!("{name} ({}, {file})", v.spec);
    assert_eq!(ans.status, v.expect_status, "{ctx}: status; body {}", ans.body);
    if let Some(msg) = &v.error_message {
        assert_eq!(ans.body["message"].as_str(), Some(msg.as_str()), "{ctx}: error message; body {}", ans.body);
    }
    if let Some(field) = &v.error_field {
        assert_eq!(ans.body["field"].as_str(), Some(field.as_str()), "{ctx}: error field; body {}", ans.body);
    }
    let source_ts = chrono::DateTime::parse_from_rfc3339(&v.source_timestamp).unwrap().with_timezone(&chrono::Utc);
    let want_ts = pipeline_run_metrics::sink::python_isoformat(&source_ts);
    for p in &ans.points {
        assert_eq!(p.project, METRIC_PROJECT, "{ctx}: project of {p:?}");
        if p.name != "handler_execution_failure" {
            assert_eq!(p.timestamp, want_ts, "{ctx}: point time of {p:?}");
        }
    }
    let mut got: Vec<&Point> = ans.points.iter().collect();
    got.sort_by_key(|p| key(p));
    let mut want: Vec<&Expect> = v.expect.iter().collect();
    want.sort_by_key(|e| (e.metric.clone(), e.labels.clone().into_iter().collect::<Vec<_>>()));
    let got_view: Vec<String> = got.iter().map(|p| format!("{} {:?} = {:?}", p.name, p.labels, p.value)).collect();
    let want_view: Vec<String> = want.iter().map(|e| format!("{} {:?} = {:?}", e.metric, e.labels, e.value)).collect();
    assert_eq!(got_view, want_view, "{ctx}: points (name, labels, value; exact doubles)");
}

macro_rules! vectors {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                run(stringify!($name)).await;
            }
        )*

        #[test]
        fn every_fixture_vector_has_a_test() {
            let tested: std::collections::BTreeSet<&str> = [$(stringify!($name)),*].into_iter().collect();
            let fixtures: std::collections::BTreeSet<String> = all_vectors().into_iter().map(|(_, _, v)| v.name).collect();
            let fixtures: std::collections::BTreeSet<&str> = fixtures.iter().map(String::as_str).collect();
            assert_eq!(tested, fixtures, "add each fixture vector to the vectors! list (and only those)");
        }
    };
}

vectors! {
    new_providers_1_history_empty,
    new_providers_2_history_missing,
    new_providers_3_half_new,
    new_providers_4_batch_ids_excluded,
    providers_volume_ratio_1_half,
    providers_volume_ratio_2_history_missing,
    providers_volume_ratio_3_no_previous,
    new_beneficiaries_1_history_empty,
    new_beneficiaries_2_history_missing,
    new_beneficiaries_3_half_new,
    new_beneficiaries_4_batch_ids_excluded,
    beneficiaries_volume_ratio_1_half,
    beneficiaries_volume_ratio_2_history_missing,
    beneficiaries_volume_ratio_3_no_previous,
    new_providers_batch_missing_is_400,
    entities_history_missing_batch_without_entity_columns,
    entities_one_history_table_missing,
    pre_filtered_1_approval,
    pre_filtered_2_wrangling,
    pre_filtered_3_unprocessable_missing,
    pre_filtered_4_processable_missing,
    pre_filtered_both_empty,
    processable_1_approval,
    processable_2_wrangling,
    processable_3_processable_missing,
    processable_4_unprocessable_missing,
    processable_5_both_missing,
    claims_paid_one_query_for_both_families,
    pre_filtered_missing_partner_after_no_query,
    post_filtered_1_selection,
    post_filtered_2_approval,
    post_filtered_3_excluded_missing,
    post_filtered_savings_missing_is_permanent,
    expired_1_no_expired_rows,
    expired_2_empty_tables,
    expired_3_windows,
    expired_missing_table_is_permanent,
    selected_savings_1_per_agent,
    selected_savings_2_empty_table,
    selected_savings_3_missing_table,
    selected_savings_null_agent_is_none,
    savings_1_evaluation,
    savings_2_approval,
    savings_3_missing_table,
    savings_4_empty_table,
    unsent_claims_1_nothing_sendable_submitted,
    unsent_claims_2_nothing_received,
    unsent_claims_pending_invoice_and_statuses,
    unsent_savings_1_ratio,
    unsent_savings_2_nothing_accepted,
    sent_validation_savings_1_ratio,
    sent_validation_savings_2_nothing_validated,
    shared_id_fatura_1_complete,
    shared_id_fatura_2_partial,
    shared_id_fatura_3_none,
}
