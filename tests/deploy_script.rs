//! deploy/cloud-run.sh in `--dry-run` mode: it prints every command it would run (calling no
//! gcloud, bq or network), and those commands carry what a secure deployment needs: least
//! privilege grants, the invoker on the service only, AUTH_MODE=verify with the push settings,
//! the push subscription with OIDC, an ack deadline and dead-lettering, the bindings Pub/Sub's
//! service agent needs, and the Cloud Storage notification of Datastream's bucket.

use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cloud-run.sh");

/// The script's dry run with `env` (and `PATH` only): exit code, the printed command lines (shell
/// quoting undone: backslashes removed), stderr.
fn dry_run(env: &[(&str, &str)]) -> (i32, Vec<String>, String) {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .arg("--dry-run")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout).unwrap().lines().map(|l| l.replace('\\', "")).collect();
    (out.status.code().unwrap_or(-1), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The one printed command that starts with `prefix` (not a comment).
fn command<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one command starting with {prefix:?} in:\n{}", lines.join("\n"));
    found[0]
}

fn assert_flags(line: &str, flags: &[&str]) {
    for flag in flags {
        assert!(line.split(' ').any(|word| word == *flag), "{flag} missing from: {line}");
    }
}

const FULL: &[(&str, &str)] = &[
    ("PROJECT", "metrics-proj"),
    ("DATA_PROJECT", "data-proj"),
    ("DATASETS", "analytics, other-proj.refined"),
    ("DATASTREAM_BUCKET", "ds-bucket"),
    ("DATASTREAM_PREFIX", "ds/public_pipeline_run/"),
    ("FACT_STORE", "firestore"),
    ("PROJECT_NUMBER", "123456789"),
    ("TAG", "abc1234"),
];

const FN_SA: &str = "serviceAccount:metrics-fn@metrics-proj.iam.gserviceaccount.com";
const PUSH_SA: &str = "pubsub-push@metrics-proj.iam.gserviceaccount.com";
const PUBSUB_AGENT: &str = "serviceAccount:service-123456789@gcp-sa-pubsub.iam.gserviceaccount.com";
const URL: &str = "https://pipeline-run-metrics-123456789.europe-west1.run.app/";

#[test]
fn dry_run_prints_a_least_privilege_deployment_with_oidc_push_and_dead_letters() {
    let (code, lines, err) = dry_run(FULL);
    assert_eq!(code, 0, "{err}");
    // nothing is looked up or run in a dry run: every line is a command or a comment
    assert!(lines.iter().all(|l| l.starts_with("gcloud ") || l.starts_with("bq ") || l.starts_with('#')), "{lines:?}");

    // the service accounts, created unless they exist
    for name in ["metrics-fn", "pubsub-push"] {
        command(&lines, &format!("gcloud iam service-accounts create {name} "));
        assert!(lines.iter().any(|l| l.starts_with("# unless it exists: gcloud iam service-accounts describe")
            && l.contains(&format!("{name}@metrics-proj"))));
    }
    // the function's roles: each on what needs it
    let member = format!("--member={FN_SA}");
    assert_flags(
        command(
            &lines,
            "gcloud projects add-iam-policy-binding data-proj --member=serviceAccount:metrics-fn@metrics-proj.iam.gserviceaccount.com --role=roles/bigquery.jobUser",
        ),
        &[&member, "--role=roles/bigquery.jobUser"],
    );
    assert!(command(&lines, "bq query --project_id=data-proj --nouse_legacy_sql GRANT `roles/bigquery.dataViewer` ON SCHEMA `data-proj`.analytics")
        .ends_with(&format!("TO \"{FN_SA}\"")));
    command(
        &lines,
        "bq query --project_id=data-proj --nouse_legacy_sql GRANT `roles/bigquery.dataViewer` ON SCHEMA `other-proj`.refined",
    );
    assert_flags(
        command(&lines, "gcloud projects add-iam-policy-binding metrics-proj "),
        &[&member, "--role=roles/monitoring.metricWriter"],
    );
    assert_flags(
        command(
            &lines,
            "gcloud projects add-iam-policy-binding data-proj --member=serviceAccount:metrics-fn@metrics-proj.iam.gserviceaccount.com --role=roles/datastore.user",
        ),
        &["--condition=None"],
    );
    assert_flags(
        command(&lines, "gcloud storage buckets add-iam-policy-binding gs://ds-bucket "),
        &[&member, "--role=roles/storage.objectViewer"],
    );
    // no project-wide grant beyond jobUser, metricWriter and (with Firestore) datastore.user
    let project_roles: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("gcloud projects add-iam-policy-binding"))
        .filter_map(|l| l.split(' ').find_map(|w| w.strip_prefix("--role=")))
        .collect();
    assert_eq!(project_roles, ["roles/bigquery.jobUser", "roles/monitoring.metricWriter", "roles/datastore.user"]);

    // image and service
    command(&lines, "gcloud artifacts repositories create apps ");
    let image = "--image=europe-west1-docker.pkg.dev/metrics-proj/apps/pipeline-run-metrics:abc1234";
    assert_flags(
        command(&lines, "gcloud builds submit "),
        &["--tag=europe-west1-docker.pkg.dev/metrics-proj/apps/pipeline-run-metrics:abc1234"],
    );
    let deploy = command(&lines, "gcloud run deploy pipeline-run-metrics ");
    assert_flags(
        deploy,
        &[
            image,
            "--service-account=metrics-fn@metrics-proj.iam.gserviceaccount.com",
            "--no-allow-unauthenticated",
            "--timeout=90s",
        ],
    );
    let env = deploy.split(' ').find_map(|w| w.strip_prefix("--set-env-vars=^;^")).expect(deploy);
    let env: Vec<&str> = env.split(';').collect();
    for want in [
        "AUTH_MODE=verify".to_string(),
        format!("PUSH_AUDIENCE={URL}"),
        format!("PUSH_SERVICE_ACCOUNTS={PUSH_SA}"),
        "METRICS_BACKEND=gcm".into(),
        "CLOUD_RUN_PROJECT_ID=metrics-proj".into(),
        "BIGQUERY_PROJECT_ID=data-proj".into(),
        "ALLOWED_DATASETS=analytics,other-proj.refined".into(),
        "FACT_STORE=firestore".into(),
        "FIRESTORE_PROJECT=data-proj".into(),
        "FILES_PREFIXES=ds/public_pipeline_run/".into(),
    ] {
        assert!(env.contains(&want.as_str()), "{want} missing from {env:?}");
    }
    // the push account may invoke this service only
    let invoker = command(&lines, "gcloud run services add-iam-policy-binding pipeline-run-metrics ");
    assert_flags(invoker, &[&format!("--member=serviceAccount:{PUSH_SA}"), "--role=roles/run.invoker"]);
    assert_eq!(lines.iter().filter(|l| l.contains("roles/run.invoker")).count(), 1);

    // topics, dead letters, the push subscription with OIDC
    command(&lines, "gcloud pubsub topics create pipeline-runs ");
    command(&lines, "gcloud pubsub topics create pipeline-runs-dead-letter ");
    command(&lines, "gcloud pubsub subscriptions create pipeline-runs-dead-letter-sub ");
    assert_flags(
        command(&lines, "gcloud pubsub subscriptions create pipeline-run-metrics-push "),
        &[
            "--topic=pipeline-runs",
            &format!("--push-endpoint={URL}"),
            &format!("--push-auth-service-account={PUSH_SA}"),
            &format!("--push-auth-token-audience={URL}"),
            "--ack-deadline=90",
            "--dead-letter-topic=pipeline-runs-dead-letter",
            "--max-delivery-attempts=10",
            "--min-retry-delay=10s",
            "--max-retry-delay=600s",
        ],
    );
    assert_flags(
        command(&lines, "gcloud pubsub topics add-iam-policy-binding pipeline-runs-dead-letter "),
        &[&format!("--member={PUBSUB_AGENT}"), "--role=roles/pubsub.publisher"],
    );
    assert_flags(
        command(&lines, "gcloud pubsub subscriptions add-iam-policy-binding pipeline-run-metrics-push "),
        &[&format!("--member={PUBSUB_AGENT}"), "--role=roles/pubsub.subscriber"],
    );
    assert_flags(
        command(&lines, &format!("gcloud iam service-accounts add-iam-policy-binding {PUSH_SA} ")),
        &[&format!("--member={PUBSUB_AGENT}"), "--role=roles/iam.serviceAccountTokenCreator"],
    );

    // Datastream's bucket notifies the topic of finished files under the prefix
    assert_flags(
        command(&lines, "gcloud storage buckets notifications create gs://ds-bucket "),
        &[
            "--topic=projects/metrics-proj/topics/pipeline-runs",
            "--event-types=OBJECT_FINALIZE",
            "--object-prefix=ds/public_pipeline_run/",
        ],
    );
    assert_flags(
        command(
            &lines,
            "gcloud pubsub topics add-iam-policy-binding pipeline-runs --project=metrics-proj --member=serviceAccount:GCS_SERVICE_AGENT",
        ),
        &["--role=roles/pubsub.publisher"],
    );
}

#[test]
fn without_bucket_or_firestore_nothing_is_granted_for_them() {
    let (code, lines, err) =
        dry_run(&[("PROJECT", "p-metrics"), ("DATASETS", "analytics"), ("BUILD", "none"), ("PROJECT_NUMBER", "42")]);
    assert_eq!(code, 0, "{err}");
    let all = lines.join("\n");
    for absent in ["roles/datastore.user", "roles/storage.objectViewer", "notifications create", "gcloud builds submit"]
    {
        assert!(!all.contains(absent), "{absent} in:\n{all}");
    }
    assert!(all.contains("# BUILD=none"), "{all}");
    // the data project defaults to the metric project
    command(
        &lines,
        "bq query --project_id=p-metrics --nouse_legacy_sql GRANT `roles/bigquery.dataViewer` ON SCHEMA `p-metrics`.analytics",
    );
}

#[test]
fn required_settings_and_bad_values_are_refused_before_anything_runs() {
    for (env, says) in [
        (vec![("DATASETS", "a")], "PROJECT is required"),
        (vec![("PROJECT", "p-metrics")], "DATASETS is required"),
        (vec![("PROJECT", "p-metrics"), ("DATASETS", "a"), ("FACT_STORE", "dynamo")], "FACT_STORE must be"),
        (vec![("PROJECT", "p-metrics"), ("DATASETS", "a"), ("BUILD", "docker")], "BUILD must be"),
    ] {
        let (code, lines, err) = dry_run(&env);
        assert_eq!(code, 2, "{env:?}");
        assert!(lines.is_empty(), "{env:?} printed {lines:?}");
        assert!(err.contains(says), "{env:?}: {err}");
    }
}
