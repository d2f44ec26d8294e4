//! Per handler (handlers.md §6, §7): the match rule (own pipeline + COMPLETED matches; a sibling
//! pipeline, another status and an empty payload don't) and every missing-variable error, in
//! check order, with the spec's message. Nothing here reaches BigQuery: variables are checked
//! before any query.

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
                Err(HandlerError::InvalidInput { field, message: got }) => {
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
