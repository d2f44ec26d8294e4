//! The fatal line of each kind of startup failure: its `message` and `error` fields are what
//! `main` printed before this type existed, and `Display` is the two joined.

use super::*;

fn fields(e: &StartupError) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(&e.line()).unwrap();
    assert_eq!(v["severity"], "ERROR");
    assert_eq!(v["target"], "pipeline_run_metrics");
    (v["message"].as_str().unwrap().to_string(), v["error"].as_str().unwrap().to_string())
}

#[test]
fn each_failure_has_the_line_it_had() {
    let config =
        crate::config::Config::from_map([("PORT", "eighty"), ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")]).unwrap_err();
    let cases: Vec<(StartupError, &str, &str)> = vec![
        (config.into(), "invalid configuration", "invalid configuration: PORT=\"eighty\": a port number 0-65535"),
        (
            StartupError::Credentials { step: "no usable Google credentials", detail: "refused".into() },
            "no usable Google credentials",
            "refused",
        ),
        (
            StartupError::Backend {
                step: "cannot reach the fact store (FACT_STORE=redis, REDIS_URL)",
                detail: "down".into(),
            },
            "cannot reach the fact store (FACT_STORE=redis, REDIS_URL)",
            "down",
        ),
        (StartupError::Bind { detail: "127.0.0.1:1: in use".into() }, "cannot bind", "127.0.0.1:1: in use"),
    ];
    for (e, message, detail) in cases {
        assert_eq!(fields(&e), (message.to_string(), detail.to_string()));
        assert_eq!(e.to_string(), format!("{message}: {detail}"));
    }
}

#[test]
fn catalogue_and_profile_failures_keep_their_file_and_line() {
    let dir = std::env::temp_dir().join(format!("prm-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.toml"), "not = [toml").unwrap();
    let catalogue = crate::handlers::all(Some(&dir)).err().expect("a broken handler file");
    let text = catalogue.to_string();
    let e = StartupError::Catalogue(catalogue);
    assert_eq!(fields(&e), ("invalid handler catalogue".to_string(), text.clone()));
    assert!(text.contains("bad.toml"), "{text}");
    let profiles = crate::handlers::lifecycle::load(Some(&dir), None).expect_err("a broken profile file");
    let text = profiles.to_string();
    let e = StartupError::Profiles(profiles);
    assert_eq!(e.to_string(), format!("invalid lifecycle profiles: {text}"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_secret_in_the_configuration_is_not_in_the_line() {
    let e: StartupError = crate::config::Config::from_map([
        ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1"),
        ("FACT_STORE", "redis"),
        ("REDIS_URL", "redis://:hunter2@h:notaport"),
    ])
    .unwrap_err()
    .into();
    assert!(e.line().contains("REDIS_URL") && !e.line().contains("hunter2"), "{}", e.line());
    assert!(!e.to_string().contains("hunter2"), "{e}");
}
