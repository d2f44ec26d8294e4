//! The command line of the real binary: `--help` and `--version`, usage errors (exit code 2,
//! nothing started), `check`, and `dashboards` / `alerts`, whose output must be what the
//! generators of `pipeline_run_metrics::ops` give for the catalogue and profiles the environment
//! names (the generated documents themselves are checked by tests/ops.rs).

mod common;

use std::time::{Duration, Instant};

use common::process::Process;
use pipeline_run_metrics::handlers::{self, lifecycle};
use pipeline_run_metrics::ops::{self, AlertFormat, DashboardFormat, Thresholds};
use serde_json::Value;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(env: &[(&str, &str)], args: &[&str]) -> Out {
    let out = Process::binary().envs(env.iter().copied()).args(args).output();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn profiles(enabled: Option<&[String]>) -> Vec<lifecycle::Profile> {
    lifecycle::load(None, enabled).unwrap()
}

#[test]
fn help_names_every_command_and_the_environment_and_version_the_package() {
    let out = run(&[], &["--help"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for command in ["serve", "check", "replay", "dashboards", "alerts"] {
        assert!(out.stdout.lines().any(|l| l.trim_start().starts_with(command)), "{command}: {}", out.stdout);
    }
    for variable in ["METRICS_BACKEND", "ALLOWED_DATASETS", "STORAGE_EMULATOR_HOST", "GCP_SA_KEY_SECRET_ARN"] {
        assert!(out.stdout.contains(variable), "{variable}");
    }
    let out = run(&[], &["--version"]);
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout.trim(), format!("pipeline-run-metrics {}", env!("CARGO_PKG_VERSION")));
    // a subcommand's help is help, not a server: it returns at once
    let t0 = Instant::now();
    let out = run(&[], &["replay", "--help"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("Usage: pipeline-run-metrics replay"), "{}", out.stdout);
    for flag in ["--since", "--until", "--tables", "--no-queries", "--dry-run", "--facts-file"] {
        assert!(out.stdout.contains(flag), "{flag}");
    }
    assert!(t0.elapsed() < Duration::from_secs(10));
    let out = run(&[], &["dashboards", "--help"]);
    assert!(out.code == Some(0) && out.stdout.contains("[possible values: gcm, grafana]"), "{}", out.stdout);
}

#[test]
fn unknown_arguments_are_usage_errors_with_exit_code_2() {
    for args in [
        &["frobnicate"][..],
        &["--port", "9090"],
        &["serve", "--verbose"],
        &["replay"],
        &["replay", "--bogus", "x.jsonl"],
        &["dashboards"],
        &["dashboards", "--format", "svg"],
        &["alerts", "--format", "gcm", "--failure-rate", "2"],
        &["alerts", "--format", "prometheus", "--no-success-hours", "-1"],
    ] {
        let t0 = Instant::now();
        let out = run(&[], args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("error: "), "{args:?}: {}", out.stderr);
        // an unknown argument or command shows the usage; a bad value the way to the help
        assert!(
            out.stderr.contains("Usage: pipeline-run-metrics") || out.stderr.contains("--help"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed on stdout");
        assert!(t0.elapsed() < Duration::from_secs(10), "{args:?}: nothing started");
    }
}

#[test]
fn an_unknown_argument_shows_the_usage() {
    for args in [&["frobnicate"][..], &["--port", "9090"], &["replay", "--bogus", "x.jsonl"]] {
        let out = run(&[], args);
        assert_eq!(out.code, Some(2));
        assert!(out.stderr.contains("Usage: pipeline-run-metrics"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn check_as_a_command_and_as_the_old_flag() {
    for args in [&["check"][..], &["--check"]] {
        let out = run(&[("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")], args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        assert!(out.stdout.contains("lifecycle profiles are valid"), "{}", out.stdout);
    }
    // a profile that does not exist: the same failure for both
    for args in [&["check"][..], &["--check"]] {
        let out = run(&[("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1"), ("PROFILES", "no_such_orchestrator")], args);
        assert_eq!(out.code, Some(2), "{args:?}");
        assert!(out.stderr.contains("no_such_orchestrator"), "{}", out.stderr);
        assert!(out.stderr.contains("PROFILES: unknown profile"), "the variable named, no line: {}", out.stderr);
        assert!(!out.stderr.contains("PROFILES:0"), "{}", out.stderr);
    }
}

#[test]
fn dashboards_are_the_generators_output_for_the_profiles_in_force() {
    let catalogue = handlers::all(None).unwrap();
    let all = profiles(None);
    let none = profiles(Some(&[]));
    for (format, name) in DashboardFormat::ALL {
        let want = ops::dashboard(*name, &ops::Inputs::new(&catalogue, &all)).unwrap();
        // no ALLOWED_DATASETS, no emulator: the generators read no dataset
        let out = run(&[], &["dashboards", "--format", format]);
        assert_eq!(out.code, Some(0), "{format}: {}", out.stderr);
        assert!(out.stdout == want, "{format}: not the generator's dashboard");
        serde_json::from_str::<Value>(&out.stdout).unwrap();
        // PROFILES is honoured: without profiles, a dashboard of the claim metrics alone
        let claims_only = ops::dashboard(*name, &ops::Inputs::new(&catalogue, &none)).unwrap();
        assert!(claims_only != want, "{format}: the comparison tells profiles apart");
        let out = run(&[("PROFILES", "none")], &["dashboards", "--format", format]);
        assert!(out.stdout == claims_only, "{format}: PROFILES=none not honoured");
    }
    // --source logs-based and --title reach the Cloud Monitoring dashboard
    let mut inputs = ops::Inputs::new(&catalogue, &all);
    inputs.gcm_source = ops::GcmSource::LogsBased;
    inputs.title = "Runs".into();
    let want = ops::dashboard(DashboardFormat::Gcm, &inputs).unwrap();
    let out = run(&[], &["dashboards", "--format", "gcm", "--source", "logs-based", "--title", "Runs"]);
    assert!(out.stdout == want, "--source/--title not honoured");
    assert!(want.contains("logging.googleapis.com/user/") && want.contains("\"Runs\""));
}

#[test]
fn alerts_print_each_policy_or_write_each_file() {
    let catalogue = handlers::all(None).unwrap();
    let all = profiles(None);
    let inputs = ops::Inputs::new(&catalogue, &all);
    let thresholds = Thresholds {
        failure_rate: 0.5,
        duration_p95: Duration::from_secs(900),
        no_success: Duration::from_secs(6 * 3600),
        notification_channels: vec!["projects/p/notificationChannels/1".into()],
        ..Thresholds::default()
    };
    let flags = [
        "--failure-rate",
        "0.5",
        "--duration-p95",
        "900",
        "--no-success-hours",
        "6",
        "--notification-channel",
        "projects/p/notificationChannels/1",
    ];
    // Cloud Monitoring: one policy per line on stdout
    let want = ops::alerts(AlertFormat::Gcm, &inputs, &thresholds).unwrap();
    assert!(want.len() > 1);
    let out = run(&[], &[&["alerts", "--format", "gcm"][..], &flags].concat());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let got: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let want_docs: Vec<Value> = want.iter().map(|a| serde_json::from_str(&a.content).unwrap()).collect();
    assert_eq!(got, want_docs);
    // the flags matter: the defaults give other policies
    let defaults = ops::alerts(AlertFormat::Gcm, &inputs, &Thresholds::default()).unwrap();
    assert_ne!(defaults, want);
    // --output: one file each, named as the generator names them
    let dir = std::env::temp_dir().join(format!("prm-cli-alerts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(&[], &[&["alerts", "--format", "gcm", "--output", dir.to_str().unwrap()][..], &flags].concat());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut want_names: Vec<String> = want.iter().map(|a| a.file_name.clone()).collect();
    want_names.sort();
    assert_eq!(names, want_names);
    for a in &want {
        assert_eq!(std::fs::read_to_string(dir.join(&a.file_name)).unwrap(), a.content, "{}", a.file_name);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // Prometheus: the one rules file, as generated
    let want = ops::alerts(AlertFormat::Prometheus, &inputs, &thresholds).unwrap();
    assert_eq!(want.len(), 1);
    let out = run(&[], &[&["alerts", "--format", "prometheus"][..], &flags].concat());
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout == want[0].content, "not the generator's rules file");
    // an output that cannot be written: exit code 2, the path named
    let file = std::env::temp_dir().join(format!("prm-cli-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    let out = run(&[], &["alerts", "--format", "prometheus", "--output", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains(file.to_str().unwrap()), "{}", out.stderr);
    std::fs::remove_file(&file).unwrap();
}
