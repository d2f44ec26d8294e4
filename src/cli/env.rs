//! The environment variables of the configuration, as `--help` lists them.
//!
//! The configuration is read from the environment by [`crate::config::Config::from_env`] (its
//! own validation and defaults); this table only describes it. A unit test keeps the two in
//! step: every variable the configuration reads is listed here, and nothing else except the
//! ones the process reads itself (`AWS_LAMBDA_RUNTIME_API`, `GOOGLE_APPLICATION_CREDENTIALS`).

/// (variables, default, meaning), grouped as the README's configuration sections.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("PORT, HOST", "8080, 0.0.0.0", "HTTP port and bind address (serve)"),
    ("CLOUD_RUN_PROJECT_ID (MAGEAI_MONITORING_…)", "local-project", "project metrics are written to"),
    ("BIGQUERY_PROJECT_ID (MAGEAI_MONITORING_…)", "test-project", "project of query jobs and of unqualified tables"),
    ("BIGQUERY_EMULATOR_HOST", "unset", "host:port of a BigQuery emulator; unset: BigQuery with Google credentials"),
    ("BIGQUERY_TIMEOUT_SECS", "30", "limit of one BigQuery call"),
    ("METRICS_BACKEND", "stdout (gcm when LOCAL_MODE=false)", "stdout, gcm (Cloud Monitoring) or otlp"),
    ("LOCAL_MODE (MAGEAI_MONITORING_…)", "true", "the reference's switch: false selects gcm"),
    ("METRICS_FORMAT, EMF_NAMESPACE", "json, pipeline-run-metrics", "stdout lines: json or emf (CloudWatch)"),
    ("METRICS_FILE", "unset", "stdout backend: also write each metric line to this file"),
    ("GCM_ENDPOINT", "https://monitoring.googleapis.com", "Cloud Monitoring API base URL"),
    ("GCM_RESOURCE, GCM_TASK_ID", "global, singleton", "monitored resource of gauges: global or generic_task"),
    ("GCM_LOCATION, GCM_NAMESPACE, GCM_JOB", "global, pipeline-run-metrics, $K_SERVICE", "generic_task labels"),
    ("GCM_CUMULATIVE_INTERVAL_SECS", "60", "at most one write per interval of each cumulative series"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTLP/HTTP collector base URL"),
    ("OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME", "unset, pipeline-run-metrics", "extra headers; service.name"),
    ("SINK_DEADLINE_SECS", "20", "how long a sink retries one event's points"),
    ("GCP_SA_KEY_JSON", "unset", "a service-account key (JSON); unset: GOOGLE_APPLICATION_CREDENTIALS or ADC"),
    ("GCP_SA_KEY_SECRET_ARN", "unset", "AWS Secrets Manager secret holding the key JSON, read at startup"),
    ("GCP_EXTERNAL_ACCOUNT_JSON", "unset", "workload identity federation from AWS (external_account JSON)"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "unset", "Application Default Credentials file"),
    (
        "STORAGE_EMULATOR_HOST",
        "unset",
        "a Cloud Storage emulator, host:port or http://host:port (gs:// sources, notifications)",
    ),
    ("LOG_LEVEL", "info (replay: warn)", "error, warn, info, debug, trace, off"),
    ("HANDLERS_DIR", "unset", "extra or overriding handler files"),
    ("PROFILES, PROFILES_DIR", "all, unset", "lifecycle profiles in force (none: no lifecycle metrics); extra files"),
    ("LOOKUP_WAIT_SECS", "600", "how long a task row waits for the run row that names its pipeline"),
    ("FACT_STORE", "memory", "memory, redis or firestore"),
    ("FACT_MEMORY_CAPACITY", "100000 (replay: unbounded)", "memory: facts kept (and as many rows, dimensions)"),
    ("FACT_MEMORY_MIB", "8 per 100000 of capacity (replay: unbounded)", "memory: bytes for all of them"),
    ("REDIS_URL, FACT_KEY_PREFIX", "unset, prm:", "redis store"),
    ("FIRESTORE_PROJECT, FIRESTORE_DATABASE", "data project, (default)", "firestore store"),
    ("FIRESTORE_COLLECTION_PREFIX, FIRESTORE_EMULATOR_HOST", "prm_, unset", "firestore collections; emulator"),
    ("FACT_TTL_SECS, FACT_STORE_TIMEOUT_SECS", "691200, 5", "shared stores: entry lifetime; request limit"),
    ("MAX_BODY_BYTES", "14680064", "largest request body"),
    ("BODY_BUFFER_BYTES", "4 × MAX_BODY_BYTES", "request-body bytes held at once; past it, 429"),
    (
        "HEADER_READ_TIMEOUT_SECS, IDLE_TIMEOUT_SECS",
        "10, 620",
        "connection: headers from its start; idle between requests",
    ),
    ("BODY_READ_TIMEOUT_SECS", "20", "a request's body must arrive within (408 otherwise)"),
    ("PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNTS", "unset", "push OIDC verification: audience, allowed accounts"),
    ("AUTH_MODE, PUSH_JWKS_URL", "verify with an audience, Google's", "verify, off or trust-platform; signing keys"),
    ("ACK_PERMANENT_ERRORS", "false", "answer permanent errors 200 instead of 4xx"),
    ("EVENT_DEADLINE_SECS", "50", "limit of one event (replay: of one chunk of records)"),
    ("DEDUP_WINDOW_SECS, DEDUP_CAPACITY", "600, 50000", "de-duplication window (0: off) and its size"),
    ("MAX_IN_FLIGHT", "256", "events processed at once; more get 429"),
    ("ALLOWED_DATASETS", "unset", "datasets handlers may read"),
    (
        "MAX_LABEL_VALUE_BYTES, MAX_LABEL_VALUES",
        "1024, 1000",
        "longest label value; distinct values per label (0: any)",
    ),
    ("SELF_METRICS, SELF_METRICS_INTERVAL_SECS", "on with gcm/otlp, 60", "the function's own metrics"),
    ("SHUTDOWN_GRACE_SECS", "8", "after SIGTERM, how long in-flight events may run"),
    (
        "PROCESS_HISTORY, HISTORY_TIME_COLUMNS",
        "false, completed_at,updated_at",
        "process backfill records (replay: always)",
    ),
    ("FILES_PREFIXES, FILES_TABLES, MAX_LINE_BYTES", "unset, the tables read, 16 MiB", "Datastream files read"),
    ("OPENLINEAGE_API_KEY", "unset", "key OpenLineage emitters must send"),
    ("K_SERVICE, K_REVISION", "set by Cloud Run", "name the instance's cumulative series"),
    ("AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_LOG_STREAM_NAME", "set by Lambda", "the same on Lambda"),
    ("AWS_LAMBDA_RUNTIME_API", "set by Lambda", "serve through the Lambda Runtime API"),
];

/// The "Environment" section of `--help`.
pub fn help() -> String {
    let mut out = String::from("Environment (configuration of every command; defaults in brackets):\n");
    for (names, default, meaning) in VARIABLES {
        out.push_str(&format!("  {names}\n          {meaning} [{default}]\n"));
    }
    out.push_str("\nExit codes: 0 success; 1 replay: something was not processed or not written (see its summary);\n");
    out.push_str("2 usage error or invalid configuration.");
    out
}

/// Every variable name of [`VARIABLES`] (`…` prefixes spelled out).
pub fn names() -> Vec<String> {
    let mut out = Vec::new();
    for (names, _, _) in VARIABLES {
        for part in names.split(", ") {
            match part.split_once(" (") {
                Some((name, alias)) => {
                    out.push(name.to_string());
                    let prefix = alias.trim_end_matches(')').trim_end_matches('…');
                    out.push(format!("{prefix}{name}"));
                }
                None => out.push(part.to_string()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::Config;

    /// The variables `Config::from_vars` asks for with `set` defined (and every other unset).
    fn read_with(set: &[(&str, &str)]) -> BTreeSet<String> {
        let vars = crate::vars::Vars::from_pairs(set.iter().copied());
        let _ = Config::from_vars(&vars);
        vars.asked()
    }

    #[test]
    fn the_help_lists_exactly_the_variables_the_configuration_reads() {
        let mut read = BTreeSet::new();
        // every branch that reads variables of its own
        for set in [
            vec![],
            vec![("METRICS_BACKEND", "gcm"), ("GCM_RESOURCE", "generic_task")],
            vec![("METRICS_BACKEND", "otlp")],
            vec![("METRICS_FORMAT", "emf")],
            vec![("PUSH_AUDIENCE", "https://x/"), ("PUSH_SERVICE_ACCOUNTS", "a@b")],
            vec![("FACT_STORE", "redis"), ("REDIS_URL", "redis://h")],
            vec![("FACT_STORE", "firestore")],
        ] {
            // outside local mode the configuration stops at a missing ALLOWED_DATASETS
            let mut set = set;
            set.push(("ALLOWED_DATASETS", "tmp_*"));
            read.extend(read_with(&set));
        }
        let listed: BTreeSet<String> = names().into_iter().collect();
        let missing: Vec<&String> = read.difference(&listed).collect();
        assert!(missing.is_empty(), "read by Config but not in --help: {missing:?}");
        let process_only = ["AWS_LAMBDA_RUNTIME_API", "GOOGLE_APPLICATION_CREDENTIALS"];
        let extra: Vec<&String> = listed.difference(&read).filter(|n| !process_only.contains(&n.as_str())).collect();
        assert!(extra.is_empty(), "in --help but never read: {extra:?}");
    }

    #[test]
    fn prefixed_aliases_are_spelled_out() {
        let n = names();
        assert!(n.contains(&"MAGEAI_MONITORING_CLOUD_RUN_PROJECT_ID".to_string()), "{n:?}");
        assert!(n.contains(&"CLOUD_RUN_PROJECT_ID".to_string()));
        assert!(help().contains("METRICS_BACKEND"));
    }
}
