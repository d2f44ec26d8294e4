//! Per handler (handlers.md §6, §7): the match rule (own pipeline + COMPLETED matches; a sibling
//! pipeline, another status and an empty payload don't) and every missing-variable error, in
//! check order, with the spec's message. Nothing here reaches BigQuery: variables are checked
//! before any query, and the values the spec decides without data (`without_query`) run against
//! a fake warehouse that counts queries.

use std::sync::Arc;

use pipeline_run_metrics::handlers::HandlerError;
use pipeline_run_metrics::handlers::{Handler, Plan, Projects};
use serde_json::{Value, json};

struct Case {
    pipeline: &'static str,
    sibling: &'static str,
    other_status: &'static str,
    /// (variable path, message when it is missing), in check order; `partner` included.
    required: &'static [(&'static str, &'static str)],
}

const PARTNER: (&str, &str) = ("partner", "Missing required 'partner' variable in payload.");
const RUN_ID: (&str, &str) = ("submission_run_id", "Missing required 'submission_run_id' variable in payload.");

fn case(name: &str) -> Case {
    let nv = |v: &'static str| -> (&'static str, &'static str) {
        (v, Box::leak(format!("No variable '{v}' found in payload.").into_boxed_str()))
    };
    let no = |v: &'static str| -> (&'static str, &'static str) {
        (v, Box::leak(format!("No '{v}' found in payload.").into_boxed_str()))
    };
    let leak = |v: Vec<(&'static str, &'static str)>| -> &'static [(&'static str, &'static str)] {
        Box::leak(v.into_boxed_slice())
    };
    let approval_entities = leak(vec![
        nv("processable_claims_input_table"),
        nv("unprocessable_claims_input_table"),
        nv("processable_claims_output_table"),
        nv("unprocessable_claims_output_table"),
        PARTNER,
    ]);
    let wrangling_entities = leak(vec![
        nv("refined_processable_claims_output_table"),
        nv("refined_unprocessable_claims_output_table"),
        nv("refined_processable_claims_historical_table"),
        nv("refined_unprocessable_claims_historical_table"),
        PARTNER,
    ]);
    let c = |pipeline, sibling, required| Case { pipeline, sibling, other_status: "RUNNING", required };
    match name {
        "PreFilteredApprovalHandler" => c(
            "pipesv2_approval",
            "pipesv2_wrangling",
            leak(vec![nv("unprocessable_claims_input_table"), nv("processable_claims_input_table"), PARTNER]),
        ),
        "PreFilteredWranglingHandler" => c(
            "pipesv2_wrangling",
            "pipesv2_approval",
            leak(vec![
                nv("refined_unprocessable_claims_output_table"),
                nv("refined_processable_claims_output_table"),
                PARTNER,
            ]),
        ),
        "PostFilteredSelectionHandler" => c(
            "pipesv2_selection",
            "pipesv2_approval",
            leak(vec![nv("excluded_savings_output_table"), nv("savings_input_table"), PARTNER]),
        ),
        "PostFilteredApprovalHandler" => c(
            "pipesv2_approval",
            "pipesv2_selection",
            leak(vec![nv("excluded_savings_input_table"), nv("savings_input_table"), PARTNER]),
        ),
        "ProcessableApprovalHandler" => c(
            "pipesv2_approval",
            "pipesv2_wrangling",
            leak(vec![nv("processable_claims_input_table"), nv("unprocessable_claims_input_table"), PARTNER]),
        ),
        "ProcessableWranglingHandler" => c(
            "pipesv2_wrangling",
            "pipesv2_approval",
            leak(vec![
                nv("refined_processable_claims_output_table"),
                nv("refined_unprocessable_claims_output_table"),
                PARTNER,
            ]),
        ),
        "SelectedSavingsApprovalHandler" => {
            c("pipesv2_approval", "pipesv2_evaluation", leak(vec![nv("selected_savings_input_table"), PARTNER]))
        }
        "SavingsEvaluationHandler" => {
            c("pipesv2_evaluation", "pipesv2_approval", leak(vec![nv("savings_output_table"), PARTNER]))
        }
        "SavingsApprovalHandler" => {
            c("pipesv2_approval", "pipesv2_evaluation", leak(vec![nv("savings_input_table"), PARTNER]))
        }
        "NewProvidersApprovalHandler"
        | "NewBeneficiariesApprovalHandler"
        | "ProvidersVolumeRatioApprovalHandler"
        | "BeneficiariesVolumeRatioApprovalHandler" => c("pipesv2_approval", "pipesv2_wrangling", approval_entities),
        "NewProvidersWranglingHandler"
        | "NewBeneficiariesWranglingHandler"
        | "ProvidersVolumeRatioWranglingHandler"
        | "BeneficiariesVolumeRatioWranglingHandler" => c("pipesv2_wrangling", "pipesv2_approval", wrangling_entities),
        "UnsentClaimsHandler" => c(
            "pipesv2_submission",
            "pipesv2_release",
            leak(vec![
                no("processable_claims_historical_table"),
                no("unprocessable_claims_historical_table"),
                no("internal_validation_output_table"),
                no("manual_validation_output_table"),
                ("claims_submitted_output_table", "No 'submitted_claims_output_table' found in payload."),
                PARTNER,
                RUN_ID,
            ]),
        ),
        "UnsentSavingsHandler" => c(
            "pipesv2_submission",
            "pipesv2_release",
            leak(vec![
                no("selected_savings_historical_table"),
                no("internal_validation_output_table"),
                no("manual_validation_output_table"),
                no("claims_submitted_output_table"),
                PARTNER,
                RUN_ID,
            ]),
        ),
        "SentValidationSavingsHandler" => c(
            "pipesv2_submission",
            "pipesv2_release",
            leak(vec![
                no("internal_validation_output_table"),
                no("manual_validation_output_table"),
                no("claims_submitted_output_table"),
                PARTNER,
                RUN_ID,
            ]),
        ),
        "SharedIdFaturaCompletenessHandler" => Case {
            pipeline: "pipesv2_submission",
            sibling: "pipesv2_selection",
            other_status: "FAILED",
            required: leak(vec![
                no("internal_validation_output_table"),
                no("manual_validation_output_table"),
                no("claims_submitted_output_table"),
                PARTNER,
                RUN_ID,
            ]),
        },
        "ExpiredValidationClaimsHandler" => c(
            "pipesv2_release",
            "pipesv2_submission",
            leak(vec![
                PARTNER,
                (
                    "internal_validation.internal_validation_claims_input_table",
                    "No 'internal_validation_claims_input_table' found in payload.",
                ),
                (
                    "manual_validation.manual_validation_claims_input_table",
                    "No 'manual_validation_claims_input_table' found in payload.",
                ),
            ]),
        ),
        other => panic!("no case for {other}"),
    }
}

fn handler(name: &str) -> Arc<dyn Handler> {
    pipeline_run_metrics::handlers::all(None)
        .unwrap()
        .into_iter()
        .find(|h| h.name() == name)
        .unwrap_or_else(|| panic!("{name}"))
}

fn projects() -> Projects {
    Projects::new("arvo-eng-prd", "test-project")
}

fn set(vars: &mut serde_json::Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            vars.insert(path.into(), value);
        }
        Some((outer, inner)) => {
            let o = vars.entry(outer.to_string()).or_insert_with(|| json!({}));
            o.as_object_mut().unwrap().insert(inner.into(), value);
        }
    }
}

fn event(pipeline: &str, status: &str, vars: Value) -> pipeline_run_metrics::decode::ChangeEvent {
    pipeline_run_metrics::decode::datastream::decode_ref(&json!({
        "source_timestamp": "2024-01-15T10:30:00Z", "source_metadata": {"table": "pipeline_run", "change_type": "UPDATE"},
        "payload": {"pipeline_uuid": pipeline, "status": status, "variables": vars}}))
    .unwrap()
}

fn full_variables(c: &Case) -> serde_json::Map<String, Value> {
    let mut vars = serde_json::Map::new();
    for (path, _) in c.required {
        let value = match *path {
            "partner" => json!("porto"),
            "submission_run_id" => json!("run_X"),
            _ => json!("ds.some_table"),
        };
        set(&mut vars, path, value);
    }
    vars
}

fn check(name: &str) {
    let h = handler(name);
    let c = case(name);
    let vars = Value::Object(full_variables(&c));
    // match rule
    assert!(h.matches(&event(c.pipeline, "COMPLETED", vars.clone())), "{name}: own pipeline, COMPLETED");
    assert!(!h.matches(&event(c.sibling, "COMPLETED", vars.clone())), "{name}: sibling pipeline");
    assert!(!h.matches(&event(c.pipeline, c.other_status, vars.clone())), "{name}: status {}", c.other_status);
    assert!(!h.matches(&event(c.pipeline, "completed", vars.clone())), "{name}: status is case-sensitive");
    let empty = pipeline_run_metrics::decode::datastream::decode_ref(
        &json!({"source_timestamp": "2024-01-15T10:30:00Z", "payload": {}}),
    )
    .unwrap();
    assert!(!h.matches(&empty), "{name}: empty payload");
    let null = pipeline_run_metrics::decode::datastream::decode_ref(
        &json!({"source_timestamp": "2024-01-15T10:30:00Z", "payload": null}),
    )
    .unwrap();
    assert!(!h.matches(&null), "{name}: null payload");
    // with every variable it prepares a query
    assert!(matches!(h.prepare(&event(c.pipeline, "COMPLETED", vars), &projects()), Ok(Plan::Query(_))), "{name}");
    // each missing variable, in check order, gives the spec's message and names the field
    for (path, message) in c.required {
        for missing in [Value::Null, json!(""), json!(0), json!(false)] {
            let mut vars = full_variables(&c);
            set(&mut vars, path, missing.clone());
            match h.prepare(&event(c.pipeline, "COMPLETED", Value::Object(vars)), &projects()) {
                Err(HandlerError::InvalidInput { field, message: got, .. }) => {
                    assert_eq!(got, *message, "{name}: {path} = {missing}");
                    assert_eq!(field, format!("payload.variables.{path}"), "{name}: {path}");
                }
                Err(other) => panic!("{name}: {path}: unexpected error {other:?}"),
                Ok(_) => panic!("{name}: {path} = {missing} must be reported missing"),
            }
        }
    }
}

macro_rules! handler_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            #[allow(non_snake_case)]
            fn $name() {
                check(stringify!($name));
            }
        )*

        #[test]
        fn every_catalogue_handler_has_a_test() {
            let tested: std::collections::BTreeSet<&str> = [$(stringify!($name)),*].into_iter().collect();
            let all = pipeline_run_metrics::handlers::all(None).unwrap();
            let names: std::collections::BTreeSet<&str> =
                all.iter().map(|h| h.name()).filter(|n| *n != "PipelineRunHandler").collect();
            assert_eq!(tested, names);
            assert_eq!(names.len(), 22, "handlers.md §6: 22 query handlers");
        }
    };
}

handler_tests! {
    PreFilteredApprovalHandler,
    PreFilteredWranglingHandler,
    PostFilteredSelectionHandler,
    PostFilteredApprovalHandler,
    ProcessableApprovalHandler,
    ProcessableWranglingHandler,
    SelectedSavingsApprovalHandler,
    SavingsEvaluationHandler,
    SavingsApprovalHandler,
    NewProvidersApprovalHandler,
    NewProvidersWranglingHandler,
    NewBeneficiariesApprovalHandler,
    NewBeneficiariesWranglingHandler,
    UnsentClaimsHandler,
    SentValidationSavingsHandler,
    SharedIdFaturaCompletenessHandler,
    UnsentSavingsHandler,
    ExpiredValidationClaimsHandler,
    ProvidersVolumeRatioApprovalHandler,
    ProvidersVolumeRatioWranglingHandler,
    BeneficiariesVolumeRatioApprovalHandler,
    BeneficiariesVolumeRatioWranglingHandler,
}

// ---- Values the spec decides without any query (handlers.md §7.2, §7.4-§7.8) ----------------
//
// A fake warehouse knows which tables exist and counts every query; it answers a query with
// `row` (the columns the family reads), or rejects it when `row` is None. Each case asserts the
// BigQuery work and every point, exactly.

mod without_query {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pipeline_run_metrics::handlers::{Dispatcher, HandlerError, Projects};
    use pipeline_run_metrics::warehouse::{Cell, Param, Row, TableRef, Warehouse, WarehouseError};
    use serde_json::{Value, json};

    struct Fake {
        existing: BTreeSet<String>,
        row: Option<Row>,
        checked: Mutex<Vec<String>>,
        queries: AtomicUsize,
    }

    impl Fake {
        fn new(existing: &[&str], row: Option<&[(&str, f64)]>) -> Fake {
            Fake {
                existing: existing.iter().map(|t| format!("test-project.ds.{t}")).collect(),
                row: row.map(|r| r.iter().map(|(k, v)| (k.to_string(), Cell::Float(*v))).collect()),
                checked: Mutex::new(Vec::new()),
                queries: AtomicUsize::new(0),
            }
        }
    }

    #[async_trait::async_trait]
    impl Warehouse for Fake {
        async fn table_exists(&self, t: &TableRef) -> Result<bool, WarehouseError> {
            self.checked.lock().unwrap().push(t.table().to_string());
            Ok(self.existing.contains(&t.to_string()))
        }
        async fn query(&self, _: &str, _: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            match &self.row {
                Some(row) => Ok(vec![row.clone()]),
                None => Err(WarehouseError::Rejected("this fake answers no query".into())),
            }
        }
    }

    const ENTITIES: [&str; 4] = [
        "claims/pipeline/providers/new_pct_last_3_mo",
        "claims/pipeline/beneficiaries/new_pct_last_3_mo",
        "claims/pipeline/providers/volume_ratio_last_1_mo",
        "claims/pipeline/beneficiaries/volume_ratio_last_1_mo",
    ];

    fn event(pipeline: &str, vars: Value) -> pipeline_run_metrics::decode::ChangeEvent {
        pipeline_run_metrics::decode::datastream::decode_ref(&json!({
            "source_timestamp": "2024-04-15T10:30:00Z", "source_metadata": {"table": "pipeline_run"},
            "payload": {"pipeline_uuid": pipeline, "status": "COMPLETED", "variables": vars}}))
        .unwrap()
    }

    fn wrangling() -> pipeline_run_metrics::decode::ChangeEvent {
        event(
            "pipesv2_wrangling",
            json!({"partner": "abertta",
                "refined_processable_claims_output_table": "ds.bp", "refined_unprocessable_claims_output_table": "ds.bu",
                "refined_processable_claims_historical_table": "ds.hp", "refined_unprocessable_claims_historical_table": "ds.hu"}),
        )
    }

    fn approval() -> pipeline_run_metrics::decode::ChangeEvent {
        event(
            "pipesv2_approval",
            json!({"partner": "cemig",
                "processable_claims_input_table": "ds.bp", "unprocessable_claims_input_table": "ds.bu",
                "processable_claims_output_table": "ds.hp", "unprocessable_claims_output_table": "ds.hu",
                "savings_input_table": "ds.sv", "selected_savings_input_table": "ds.ss"}),
        )
    }

    /// Runs the named handlers; returns (queries, tables checked, points as (name, value, labels),
    /// failures as (handler, message)).
    #[allow(clippy::type_complexity)]
    async fn run(
        handlers: &[&str],
        ev: &pipeline_run_metrics::decode::ChangeEvent,
        wh: &Fake,
    ) -> (usize, Vec<String>, Vec<(String, f64, BTreeMap<String, String>)>, Vec<(String, String)>) {
        let hs = pipeline_run_metrics::handlers::all(None)
            .unwrap()
            .into_iter()
            .filter(|h| handlers.contains(&h.name()))
            .collect::<Vec<_>>();
        assert_eq!(hs.len(), handlers.len(), "{handlers:?}");
        let report = Dispatcher::new(hs, Projects::new("arvo-eng-prd", "test-project")).dispatch(ev, wh).await;
        assert_eq!(report.queries_run, wh.queries.load(Ordering::SeqCst), "the report counts the fake's queries");
        let failures = report
            .failures()
            .map(|(h, e)| {
                let msg = match e {
                    HandlerError::InvalidInput { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                (h.to_string(), msg)
            })
            .collect();
        let points = report
            .points
            .iter()
            .filter(|p| p.name != "handler_execution_failure")
            .map(|p| (p.name.clone(), p.value, p.labels.clone()))
            .collect();
        let mut checked = wh.checked.lock().unwrap().clone();
        checked.sort();
        (wh.queries.load(Ordering::SeqCst), checked, points, failures)
    }

    fn labels(partner: &str, approved: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("partner".to_string(), partner.to_string()), ("approved".to_string(), approved.to_string())])
    }

    const WRANGLING_ENTITIES: [&str; 4] = [
        "NewProvidersWranglingHandler",
        "NewBeneficiariesWranglingHandler",
        "ProvidersVolumeRatioWranglingHandler",
        "BeneficiariesVolumeRatioWranglingHandler",
    ];
    const APPROVAL_ENTITIES: [&str; 4] = [
        "NewProvidersApprovalHandler",
        "NewBeneficiariesApprovalHandler",
        "ProvidersVolumeRatioApprovalHandler",
        "BeneficiariesVolumeRatioApprovalHandler",
    ];

    /// §7.7 step 6, §7.8: either historical table missing -> 1.0, and no query.
    #[tokio::test]
    async fn a_missing_historical_table_decides_1_0_without_a_query() {
        for (existing, name) in [
            (&["bp", "bu", "hp"][..], "hu missing"),
            (&["bp", "bu", "hu"], "hp missing"),
            (&["bp", "bu"], "both missing"),
        ] {
            let wh = Fake::new(existing, None);
            let (queries, checked, points, failures) = run(&WRANGLING_ENTITIES, &wrangling(), &wh).await;
            assert_eq!(queries, 0, "{name}: the reference sends no query");
            assert_eq!(failures, vec![], "{name}");
            assert_eq!(checked, ["bp", "bu", "hp", "hu"], "{name}: each table checked once");
            let want: Vec<_> = ENTITIES.iter().map(|m| (m.to_string(), 1.0, labels("abertta", "false"))).collect();
            assert_eq!(points, want, "{name}");
        }
        let wh = Fake::new(&["bp", "bu"], None);
        let (queries, _, points, failures) = run(&APPROVAL_ENTITIES, &approval(), &wh).await;
        assert_eq!((queries, failures), (0, vec![]));
        let want: Vec<_> = ENTITIES.iter().map(|m| (m.to_string(), 1.0, labels("cemig", "true"))).collect();
        assert_eq!(points, want);
    }

    /// With both historical tables present the query runs, once for the four families.
    #[tokio::test]
    async fn present_historical_tables_run_the_shared_query_once() {
        let row = [
            ("providers_new_fraction", 0.5),
            ("beneficiaries_new_fraction", 0.25),
            ("providers_volume_ratio", 3.0),
            ("beneficiaries_volume_ratio", 2.0),
        ];
        let wh = Fake::new(&["bp", "bu", "hp", "hu"], Some(&row));
        let (queries, _, points, failures) = run(&WRANGLING_ENTITIES, &wrangling(), &wh).await;
        assert_eq!((queries, failures), (1, vec![]));
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        assert_eq!(values, [0.5, 0.25, 3.0, 2.0]);
    }

    /// §7.7 step 5 before step 6: a missing batch table is a 400 even when history is missing.
    #[tokio::test]
    async fn a_missing_batch_table_is_still_a_400_before_the_history_rule() {
        let wh = Fake::new(&["bu"], None);
        let (queries, _, points, failures) = run(&["NewProvidersWranglingHandler"], &wrangling(), &wh).await;
        assert_eq!(queries, 0);
        assert_eq!(points, vec![]);
        assert_eq!(
            failures,
            [("NewProvidersWranglingHandler".to_string(), "Batch tables not found: ds.bp or ds.bu".to_string())]
        );
    }

    /// §7.5, §7.6: a missing savings table -> no points, success, no query.
    #[tokio::test]
    async fn a_missing_savings_table_means_no_points_and_no_query() {
        let wh = Fake::new(&[], None);
        let (queries, checked, points, failures) =
            run(&["SelectedSavingsApprovalHandler", "SavingsApprovalHandler"], &approval(), &wh).await;
        assert_eq!(queries, 0, "the reference sends no query");
        assert_eq!(failures, vec![]);
        assert_eq!(checked, ["ss", "sv"]);
        assert_eq!(points, vec![]);
    }

    /// §7.2 and §7.4 with both batch tables missing: U = 0 and P = 0 (or absent) are decided
    /// without data: the totals 0.0, no relative value, no query. With one table present the
    /// query runs (for the other sum).
    #[tokio::test]
    async fn both_claims_tables_missing_decide_the_totals_without_a_query() {
        let handlers = ["PreFilteredApprovalHandler", "ProcessableApprovalHandler"];
        let wh = Fake::new(&[], None);
        let (queries, checked, points, failures) = run(&handlers, &approval(), &wh).await;
        assert_eq!(queries, 0, "the reference sends no query");
        assert_eq!(failures, vec![]);
        assert_eq!(checked, ["bp", "bu"]);
        assert_eq!(
            points,
            [
                ("claims/pipeline/filtered_pre/vl_pago/total".to_string(), 0.0, labels("cemig", "true")),
                ("claims/pipeline/processable/vl_pago/total".to_string(), 0.0, labels("cemig", "true")),
            ]
        );
        let row = [
            ("unprocessable_total", 0.0),
            ("processable_total", 10.0),
            ("unprocessable_relative", 0.0),
            ("processable_relative", 1.0),
        ];
        let wh = Fake::new(&["bp"], Some(&row));
        let (queries, _, points, _) = run(&handlers, &approval(), &wh).await;
        assert_eq!((queries, points.len()), (1, 4));
    }
}
