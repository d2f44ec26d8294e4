//! `--check` (`make check-handlers`) lists which metric is written for which table, pipeline and
//! status. The rows expected here are read off `handlers/*.toml` and `profiles/mage.toml` by
//! hand, not off the output.

mod common;

use common::process::Process;

/// The table of `--check`, as (handler, tables, pipelines, statuses, metric) cells cut at the
/// header's column starts.
fn table() -> Vec<[String; 5]> {
    let out = Process::binary().arg("--check").env("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1").output();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("configuration, "), "{text}");
    let mut lines = text.lines().skip_while(|l| !l.starts_with("HANDLER"));
    let header = lines.next().unwrap_or_else(|| panic!("no table: {text}"));
    let starts: Vec<usize> =
        ["HANDLER", "TABLES", "PIPELINES", "STATUSES", "METRIC"].iter().map(|h| header.find(h).unwrap()).collect();
    lines
        .map(|l| {
            let cell = |i: usize| {
                let end = starts.get(i + 1).copied().unwrap_or(l.len()).min(l.len());
                l.get(starts[i]..end).unwrap_or("").trim().to_string()
            };
            [cell(0), cell(1), cell(2), cell(3), cell(4)]
        })
        .collect()
}

fn row(cells: [&str; 5]) -> [String; 5] {
    cells.map(str::to_owned)
}

#[test]
fn check_lists_which_metric_fires_for_which_pipeline_and_status() {
    let rows = table();
    for want in [
        // the built-in count: every pipeline_run change with a pipeline and a status
        row(["PipelineRunHandler", "pipeline_run", "*", "*", "mageai/pipeline_run/count"]),
        // handlers/savings.toml: [match] status COMPLETED, table by default pipeline_run
        row([
            "SavingsEvaluationHandler",
            "pipeline_run",
            "pipesv2_evaluation",
            "COMPLETED",
            "claims/pipeline/savings/count",
        ]),
        row([
            "SavingsApprovalHandler",
            "pipeline_run",
            "pipesv2_approval",
            "COMPLETED",
            "claims/pipeline/savings/vl_glosa_arvo",
        ]),
        // handlers/claims_entities.toml: a variant writes only the metrics it lists
        row([
            "NewProvidersWranglingHandler",
            "pipeline_run",
            "pipesv2_wrangling",
            "COMPLETED",
            "claims/pipeline/providers/new_pct_last_3_mo",
        ]),
        // handlers/expired_validation_claims.toml
        row([
            "ExpiredValidationClaimsHandler",
            "pipeline_run",
            "pipesv2_release",
            "COMPLETED",
            "claims/pipeline/validation/vl_glosa_arvo/expired/total",
        ]),
        // profiles/mage.toml: terminal statuses of pipeline_run; every pipeline
        row(["lifecycle mage", "pipeline_run", "*", "CANCELLED,COMPLETED,FAILED", "pipeline.run.finished"]),
        row(["lifecycle mage", "pipeline_run", "*", "RUNNING,CANCELLED,COMPLETED,FAILED", "pipeline.run.started"]),
        // block_run: UPSTREAM_FAILED and CONDITION_FAILED end a block that never ran
        row([
            "lifecycle mage",
            "block_run",
            "*",
            "CANCELLED,COMPLETED,CONDITION_FAILED,FAILED,UPSTREAM_FAILED",
            "pipeline.task.finished",
        ]),
        row(["lifecycle mage", "block_run", "*", "CANCELLED,COMPLETED,FAILED", "pipeline.task.duration"]),
        row(["lifecycle mage", "pipeline_run", "*", "every change", "pipeline.cdc.lag"]),
    ] {
        assert!(rows.contains(&want), "{want:?} missing from {rows:#?}");
    }
    // a variant does not list the family's metrics it does not write
    assert!(
        !rows.iter().any(|r| r[0] == "NewProvidersWranglingHandler" && r[4].contains("beneficiaries")),
        "{rows:#?}"
    );
    // every catalogue handler is listed (one row per metric it writes at least)
    for name in ["PostFilteredSelectionHandler", "PostFilteredApprovalHandler", "SavingsEvaluationHandler"] {
        assert!(rows.iter().any(|r| r[0] == name), "{name}");
    }
}
