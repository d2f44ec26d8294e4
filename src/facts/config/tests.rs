//! Tests of the fact store's settings, read through the whole configuration.

use std::time::Duration;

use super::*;
use crate::config::test_config as cfg;

#[test]
fn fact_stores() {
    let lc = |pairs: &[(&str, &str)]| cfg(pairs).map(|c| c.lifecycle.fact_store);
    assert_eq!(
        lc(&[]).unwrap(),
        FactStoreConfig::Memory { capacity: crate::facts::memory::DEFAULT_CAPACITY, bytes: None }
    );
    assert_eq!(
        lc(&[("FACT_STORE", "memory"), ("FACT_MEMORY_CAPACITY", "7")]).unwrap(),
        FactStoreConfig::Memory { capacity: 7, bytes: None }
    );
    assert_eq!(
        lc(&[("FACT_MEMORY_MIB", "3")]).unwrap(),
        FactStoreConfig::Memory { capacity: crate::facts::memory::DEFAULT_CAPACITY, bytes: Some(3 << 20) }
    );
    let e = lc(&[("FACT_MEMORY_CAPACITY", "0")]).unwrap_err().to_string();
    assert!(e.contains("FACT_MEMORY_CAPACITY") && e.contains("at least 1"), "{e}");
    for bad in ["0", "-1", "8.5", "65537", "lots"] {
        let e = lc(&[("FACT_MEMORY_MIB", bad)]).unwrap_err().to_string();
        assert!(e.contains("FACT_MEMORY_MIB") && e.contains("whole mebibytes from 1 to 65536"), "{bad}: {e}");
    }
    let r = lc(&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://:pw@127.0.0.1:6379/0")]).unwrap();
    assert_eq!(
        r,
        FactStoreConfig::Redis {
            url: Secret("redis://:pw@127.0.0.1:6379/0".into()),
            prefix: "prm:".into(),
            ttl: Duration::from_secs(8 * 24 * 3600),
            timeout: Duration::from_secs(5)
        }
    );
    assert!(!format!("{r:?}").contains("pw"), "the URL may hold a password");
    let r = lc(&[
        ("FACT_STORE", "REDIS"),
        ("REDIS_URL", "redis://10.0.0.3"),
        ("FACT_KEY_PREFIX", "svc:"),
        ("FACT_TTL_SECS", "3600"),
        ("FACT_STORE_TIMEOUT_SECS", "0.5"),
    ])
    .unwrap();
    assert_eq!(
        r,
        FactStoreConfig::Redis {
            url: Secret("redis://10.0.0.3".into()),
            prefix: "svc:".into(),
            ttl: Duration::from_secs(3600),
            timeout: Duration::from_millis(500)
        }
    );
    let c = cfg(&[("FACT_STORE", "firestore"), ("BIGQUERY_PROJECT_ID", "data-p")]).unwrap();
    assert_eq!(
        c.lifecycle.fact_store,
        FactStoreConfig::Firestore {
            project: "data-p".into(),
            database: "(default)".into(),
            collection_prefix: "prm_".into(),
            emulator_host: None,
            ttl: Duration::from_secs(8 * 24 * 3600),
            timeout: Duration::from_secs(5)
        }
    );
    assert!(c.needs_firestore_credentials());
    let c = cfg(&[
        ("FACT_STORE", "firestore"),
        ("FIRESTORE_PROJECT", "facts-p"),
        ("FIRESTORE_DATABASE", "metrics-db"),
        ("FIRESTORE_COLLECTION_PREFIX", "t1_"),
        ("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8089"),
        ("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050"),
    ])
    .unwrap();
    let FactStoreConfig::Firestore { project, database, collection_prefix, emulator_host, .. } =
        &c.lifecycle.fact_store
    else {
        panic!()
    };
    assert_eq!((project.as_str(), database.as_str(), collection_prefix.as_str()), ("facts-p", "metrics-db", "t1_"));
    assert_eq!(emulator_host.as_deref(), Some("127.0.0.1:8089"));
    assert!(!c.needs_google_credentials(), "the emulator needs no token");
}

#[test]
fn fact_store_errors_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("FACT_STORE", "dynamo")], "FACT_STORE"),
        (&[("FACT_STORE", "redis")], "REDIS_URL"),
        (&[("FACT_STORE", "redis"), ("REDIS_URL", "http://127.0.0.1:6379")], "REDIS_URL"),
        (&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://h"), ("FACT_KEY_PREFIX", "a b")], "FACT_KEY_PREFIX"),
        (&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://h"), ("FACT_TTL_SECS", "10")], "FACT_TTL_SECS"),
        (&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://h"), ("FACT_TTL_SECS", "8d")], "FACT_TTL_SECS"),
        (
            &[("FACT_STORE", "redis"), ("REDIS_URL", "redis://h"), ("FACT_STORE_TIMEOUT_SECS", "0")],
            "FACT_STORE_TIMEOUT_SECS",
        ),
        (&[("FACT_STORE", "firestore"), ("FIRESTORE_PROJECT", "a b")], "FIRESTORE_PROJECT"),
        (&[("FACT_STORE", "firestore"), ("FIRESTORE_DATABASE", "Default")], "FIRESTORE_DATABASE"),
        (&[("FACT_STORE", "firestore"), ("FIRESTORE_COLLECTION_PREFIX", "a/b")], "FIRESTORE_COLLECTION_PREFIX"),
        (&[("FACT_STORE", "firestore"), ("FIRESTORE_EMULATOR_HOST", "localhost")], "FIRESTORE_EMULATOR_HOST"),
        (&[("FACT_STORE", "memory"), ("FACT_MEMORY_CAPACITY", "lots")], "FACT_MEMORY_CAPACITY"),
    ];
    for (pairs, variable) in cases {
        let e = cfg(pairs).unwrap_err();
        assert_eq!(e.variable, *variable, "{pairs:?}: {e}");
        assert!(e.to_string().contains(variable), "{e}");
    }
    let e = cfg(&[("FACT_STORE", "redis"), ("REDIS_URL", "redis://:hunter2@h:notaport")]).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}
