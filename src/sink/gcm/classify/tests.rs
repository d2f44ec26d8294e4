use super::*;
use crate::sink::Rejection::{AlreadyWritten, OutOfWindow};

const ORDER: &str = "Points must be written in order. One or more of the points specified had an older start time than the most recent point.";
const ORDER_END: &str = "Points must be written in order. One or more of the points specified had an older end time than the most recent point.";
const SAMPLING: &str =
    "One or more points were written more frequently than the maximum sampling period configured for the metric.";

fn g(indices: &[usize], reason: &str) -> Group {
    Group { indices: Some(indices.to_vec()), reason: reason.to_string() }
}

/// (message as the API sent it, request size, groups). Sources: fake-texts.md §1.2.
#[test]
fn every_layout_yields_its_groups() {
    let table: Vec<(String, usize, Vec<Group>)> = vec![
        // L1, exposure-notifications-server#699: ranges and lists
        (format!("One or more TimeSeries could not be written: {ORDER}: timeSeries[0-12,15,16]"), 20, vec![g(
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16],
            ORDER,
        )]),
        // L1 with two reasons and the sampling suffix, open-match#569
        (
            format!(
                "One or more TimeSeries could not be written: {SAMPLING} {{Metric: custom.googleapis.com/x, Timestamps: {{Youngest Existing: '2019/06/21-12:29:46.439', New: '2019/06/21-12:29:51.439'}}}}: timeSeries[6-7]; {ORDER}: timeSeries[1]"
            ),
            8,
            vec![
                g(
                    &[6, 7],
                    &format!(
                        "{SAMPLING} {{Metric: custom.googleapis.com/x, Timestamps: {{Youngest Existing: '2019/06/21-12:29:46.439', New: '2019/06/21-12:29:51.439'}}}}"
                    ),
                ),
                g(&[1], ORDER),
            ],
        ),
        // L1 with a 500's reason, nodejs-monitoring#191
        (
            "One or more TimeSeries could not be written: An internal error occurred.: timeSeries[0]".into(),
            2,
            vec![g(&[0], "An internal error occurred.")],
        ),
        // L1a: the field path names the index too
        (
            "One or more TimeSeries could not be written: Field timeSeries[1] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request.: timeSeries[1]".into(),
            2,
            vec![g(
                &[1],
                "Field timeSeries[1] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request.",
            )],
        ),
        // L1b: field errors without index lists, opentelemetry-operations-java#225
        (
            "One or more TimeSeries could not be written: Field timeSeries[3].points had an invalid value: Only one point can be written per TimeSeries per request.; Field timeSeries[0].points had an invalid value: Only one point can be written per TimeSeries per request.".into(),
            4,
            vec![
                g(&[3], "Field timeSeries[3].points had an invalid value: Only one point can be written per TimeSeries per request."),
                g(&[0], "Field timeSeries[0].points had an invalid value: Only one point can be written per TimeSeries per request."),
            ],
        ),
        // unprefixed single field error, slo-generator#98 / field case c10 answer 1
        (
            "Field timeSeries[0].points[0].interval.end_time had an invalid value of \"2020-10-20T15:33:00-07:00\": Data points cannot be written more than 25h10s in the past.".into(),
            1,
            vec![g(&[0], "Field timeSeries[0].points[0].interval.end_time had an invalid value of \"2020-10-20T15:33:00-07:00\": Data points cannot be written more than 25h10s in the past.")],
        ),
        // L2, opentelemetry-operations-java#247
        (
            format!(
                "One or more TimeSeries could not be written: {ORDER}: global{{}} timeSeries[3]: workload.googleapis.com/process.runtime.jvm.classes.loaded{{instrumentation_source:io.opentelemetry.runtime-metrics,instrumentation_version:1.25.1-alpha}}; {ORDER}: generic_task{{location:global,task_id:,namespace:,job:unknown_service:java}} timeSeries[0-1]: workload.googleapis.com/x{{}}"
            ),
            4,
            vec![g(&[3], ORDER), g(&[0, 1], ORDER)],
        ),
        // L3, run-gmp-sidecar#50: the reason's own field path is not an index list
        (
            "One or more TimeSeries could not be written: timeSeries[2]: Field timeSeries[2].points[0].interval.start_time had an invalid value of \"2024-12-04T14:29:06.103-08:00\": The start time must be before the end time (2024-12-04T14:29:06.103-08:00) for the non-gauge metric 'prometheus.googleapis.com/x/unknown:counter'.; timeSeries[0]: Metric kind for metric custom.googleapis.com/y must be CUMULATIVE, but is GAUGE.".into(),
            3,
            vec![
                g(&[2], "Field timeSeries[2].points[0].interval.start_time had an invalid value of \"2024-12-04T14:29:06.103-08:00\": The start time must be before the end time (2024-12-04T14:29:06.103-08:00) for the non-gauge metric 'prometheus.googleapis.com/x/unknown:counter'."),
                g(&[0], "Metric kind for metric custom.googleapis.com/y must be CUMULATIVE, but is GAUGE."),
            ],
        ),
        // L4, firezone#8142: the list is the whole write group
        (
            format!(
                "One or more TimeSeries could not be written: timeSeries[0-3]: write for resource=gce_instance{{zone:us-east1-d,instance_id:6130184649770384727}} failed with: {SAMPLING}"
            ),
            4,
            vec![g(&[0, 1, 2, 3], SAMPLING)],
        ),
        // L5, chainguard-dev/terraform-infra-common#958
        (
            format!(
                "One or more TimeSeries could not be written: timeSeries[0-1] (example metric.type=\"prometheus.googleapis.com/grpc_client_handling_seconds/histogram\", metric.labels={{\"service_name\": \"cve-remediation\", \"grpc_method\": \"Get\"}}): write for resource=prometheus_target{{namespace:,instance:localhost:2112,job:cve-remediation,cluster:__run__,location:us-central1}} failed with: {ORDER}"
            ),
            2,
            vec![g(&[0, 1], ORDER)],
        ),
        // L5 as in field case c11 (no `write for resource` part), "end time" wording
        (
            format!(
                "One or more TimeSeries could not be written: timeSeries[0] (example metric.type=\"custom.googleapis.com/mageai/pipeline_run/count\", metric.labels={{\"partner\": \"acme\", \"pipeline_status\": \"RUNNING\", \"pipeline_uuid\": \"daily_claims_load\"}}): {ORDER_END}"
            ),
            1,
            vec![g(&[0], ORDER_END)],
        ),
        // L6, prometheus-engine#1970: lists, ranges, resource inside the parentheses; a label
        // value holding "; " and brackets does not split the group
        (
            "One or more TimeSeries could not be written: timeSeries[3,8-10,12] (example metric.type=\"prometheus.googleapis.com/kong_kong_latency_ms/histogram\", metric.labels={\"service\": \"a; b) [c]\", \"route\": \"route-209\"}, resource.type=\"prometheus_target\", resource.labels={\"project_id\": \"gpe-test-1\", \"namespace\": \"\"}): Monarch only accepted 199 of 200 points. Example error: New reset timestamp '2026/06/25-16:11:15.869 (1782429075869000)' must not be older than existing reset timestamp '2026/06/25-16:11:45.869 (1782429105869000)'.".into(),
            11,
            vec![g(&[3, 8, 9, 10], "Monarch only accepted 199 of 200 points. Example error: New reset timestamp '2026/06/25-16:11:15.869 (1782429075869000)' must not be older than existing reset timestamp '2026/06/25-16:11:45.869 (1782429105869000)'.")],
        ),
        // no index at all: the whole call
        (
            "Field timeSeries had an invalid value: A maximum of 200 TimeSeries can be written in a single request.".into(),
            201,
            vec![Group { indices: None, reason: "Field timeSeries had an invalid value: A maximum of 200 TimeSeries can be written in a single request.".into() }],
        ),
    ];
    for (message, n, want) in table {
        assert_eq!(failed_groups(&message, n), want, "{message}");
    }
}

/// (reason text, classification). Sources: fake-texts.md §1.3.
#[test]
fn reasons_are_classified_by_the_real_phrases() {
    let table: &[(&str, Reason)] = &[
        (ORDER, Reason::Rejected(AlreadyWritten)),
        (ORDER_END, Reason::Rejected(AlreadyWritten)),
        // rekor-tiles#470 quotes it without the final full stop
        (
            "Points must be written in order. One or more of the points specified had an older end time than the most recent point",
            Reason::Rejected(AlreadyWritten),
        ),
        (SAMPLING, Reason::Rejected(AlreadyWritten)),
        (
            "One or more points were written more frequently than the maximum sampling period configured for the metric. {Metric: workload.googleapis.com/x, Timestamps: {Youngest Existing: '2025/10/05-06:03:53.004', New: '2025/10/05-06:03:54.778'}}",
            Reason::Rejected(AlreadyWritten),
        ),
        (
            "Field timeSeries[0].points[0].interval.end_time had an invalid value of \"2026-11-29T05:29:28.482+00:00\": Data points cannot be written more than 24h in the past.",
            Reason::Rejected(OutOfWindow),
        ),
        ("Data points cannot be written more than 25h10s in the past.", Reason::Rejected(OutOfWindow)),
        (
            "Field timeSeries[3].points[0].interval.end_time had an invalid value of \"2023-09-12T10:38:00-07:00\": Data points cannot be written more than approximately 24 hours in the past, specifically no more than 25h10s in the past. Your data point is 189h27m56s before the present time, which is too far in the past.",
            Reason::Rejected(OutOfWindow),
        ),
        (
            "Field timeSeries[1] had an invalid value: Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per request.",
            Reason::Retry,
        ),
        ("An internal error occurred.", Reason::Retry),
        (
            "Internal error encountered. Please retry after a few seconds. If internal errors persist, contact support at https://cloud.google.com/support/docs.",
            Reason::Retry,
        ),
        ("Metric kind for metric custom.googleapis.com/y must be CUMULATIVE, but is GAUGE.", Reason::Unknown),
        (
            "Field timeSeries[0].metric.labels had an invalid value of \"http.scheme\": Label key contains invalid characters.",
            Reason::Unknown,
        ),
        (
            "Metrics cannot be written to cloud_run_revision. See https://cloud.google.com/monitoring/custom-metrics/creating-metrics#which-resource for a list of writable resource types.",
            Reason::Unknown,
        ),
        ("Monitored resource has too many time series (custom metrics).", Reason::Unknown),
        ("Permission monitoring.timeSeries.create denied (or the resource may not exist).", Reason::Unknown),
        // the words the old classifier matched are not the API's
        ("The points for the metric are too old", Reason::Unknown),
    ];
    for &(text, want) in table {
        assert_eq!(classify_reason(text), want, "{text}");
    }
}

#[test]
fn index_lists_stay_within_the_request() {
    assert_eq!(parse_indices("0-3,7,2", 5), vec![0, 1, 2, 3]);
    assert_eq!(parse_indices("0-18446744073709551615", 3), vec![0, 1, 2]);
    assert_eq!(parse_indices("9", 3), Vec::<usize>::new());
    assert_eq!(parse_indices("5-2", 10), Vec::<usize>::new());
    // an index beyond the request names no point
    assert_eq!(failed_groups("One or more TimeSeries could not be written: timeSeries[7]: x", 2), vec![g(&[], "x")]);
}
