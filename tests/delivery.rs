//! Delivery semantics, security and fault tolerance through HTTP (issue: at-least-once
//! delivery, push authentication, acknowledgement policy, deadlines, idempotency, hostile input).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::app::TestApp;
use common::fakes::jwks::jwks_server;
use common::fakes::warehouse::ScriptedWarehouse;
use common::fixtures::{PRE_AND_PROCESSABLE, wrangling_record};
use common::push::{Push, push_body};
use pipeline_run_metrics::config::Delivery;
use pipeline_run_metrics::ingress::auth::{Keys, PushVerifier};
use pipeline_run_metrics::ingress::http::Options;
use serde_json::{Value, json};

async fn app_with(warehouse: Arc<ScriptedWarehouse>, options: Options) -> TestApp {
    TestApp::with_options(Some(PRE_AND_PROCESSABLE), None, warehouse, options, None).await
}

const JSON: (&str, &str) = ("content-type", "application/json");

// ------------------------------------------------------------------ acknowledgement policy

/// The acknowledgement table of docs/answers.md, by default and with ACK_PERMANENT_ERRORS.
#[tokio::test]
async fn acknowledgement_policy_table() {
    for ack_permanent in [false, true] {
        let wh = Arc::new(ScriptedWarehouse::default());
        let options = Options {
            max_body_bytes: 64 * 1024,
            delivery: Delivery { ack_permanent, ..Default::default() },
            ..Default::default()
        };
        let app = app_with(wh.clone(), options).await;
        let p = |s: u16| if ack_permanent { 200 } else { s };
        let ok = app.post(&[JSON], push_body(&wrangling_record(), "m1")).await;
        assert_eq!(ok.status, 204);
        let malformed = app.post(&[JSON], "{\"hello\": 1}").await;
        assert_eq!(malformed.status, p(400));
        assert_eq!(malformed.body["error"], "malformed_event", "the body says why, even when acknowledged");
        let too_large = app.post(&[JSON], "x".repeat(65 * 1024)).await;
        assert_eq!(too_large.status, p(413));
        let media = app.post(&[("content-type", "text/html")], "<p>").await;
        assert_eq!(media.status, p(415));
        let mut missing = wrangling_record();
        missing["payload"]["variables"].as_object_mut().unwrap().remove("partner");
        let invalid = app.post(&[JSON], push_body(&missing, "m2")).await;
        assert_eq!(invalid.status, p(400));
        assert_eq!(invalid.body["field"], "payload.variables.partner");
        // transient: BigQuery unavailable -> 503 whatever the setting
        wh.fail_queries.store(1, Ordering::SeqCst);
        let transient = app.post(&[JSON], push_body(&wrangling_record(), "m3")).await;
        assert_eq!(transient.status, 503);
        assert_eq!(transient.body["class"], "transient");
    }
}

#[tokio::test]
async fn overload_is_429_and_retried_later() {
    let wh = Arc::new(ScriptedWarehouse { delay: Duration::from_millis(800), ..Default::default() });
    let app = Arc::new(
        app_with(wh, Options { delivery: Delivery { max_in_flight: 1, ..Default::default() }, ..Default::default() })
            .await,
    );
    let first = {
        let app = app.clone();
        tokio::spawn(async move { app.post(&[JSON], push_body(&wrangling_record(), "slow")).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = app.post(&[JSON], push_body(&wrangling_record(), "other")).await;
    assert_eq!(second.status, 429);
    assert_eq!(second.body["error"], "overloaded");
    // the shape of every error body: error, class, message, field (none: the request is fine)
    assert_eq!(second.body["class"], "transient", "{}", second.body);
    assert!(second.body["message"].as_str().is_some_and(|m| m.contains("in flight")), "{}", second.body);
    assert_eq!(second.body.get("field"), Some(&Value::Null), "{}", second.body);
    assert_eq!(first.await.unwrap().status, 204);
    assert_eq!(app.post(&[JSON], push_body(&wrangling_record(), "later")).await.status, 204, "admitted again");
}

// ------------------------------------------------------------------ deadline

#[tokio::test]
async fn deadline_answers_503_at_once_and_cancels_the_queries() {
    let wh = Arc::new(ScriptedWarehouse { delay: Duration::from_secs(5), ..Default::default() });
    let app = app_with(
        wh.clone(),
        Options {
            delivery: Delivery { event_deadline: Duration::from_millis(300), ..Default::default() },
            ..Default::default()
        },
    )
    .await;
    let t0 = Instant::now();
    let ans = app.post(&[JSON], push_body(&wrangling_record(), "m")).await;
    assert_eq!(ans.status, 503);
    assert_eq!(ans.body["error"], "deadline_exceeded");
    assert!(t0.elapsed() < Duration::from_secs(4), "answered before the slow query would finish");
    assert_eq!(wh.queries.load(Ordering::SeqCst), 1);
    assert_eq!(wh.cancelled.load(Ordering::SeqCst), 1, "the running query was cancelled (dropped)");
    assert!(ans.points.is_empty());
}

// ------------------------------------------------------------------ idempotency

fn names(points: &[common::app::Point]) -> Vec<String> {
    points.iter().map(|p| p.name.clone()).collect()
}

#[tokio::test]
async fn a_redelivered_event_is_answered_again_without_counting_twice() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let app = app_with(wh.clone(), Options::default()).await;
    let rec = wrangling_record();
    let first = app.post(&[JSON], push_body(&rec, "m-1")).await;
    assert_eq!(first.status, 204);
    assert_eq!(first.points.len(), 4);
    // the same message again, and the same record under a new message id (publisher retry)
    for id in ["m-1", "m-2"] {
        let again = app.post(&[JSON], push_body(&rec, id)).await;
        assert_eq!(again.status, 204, "{id}");
        assert!(again.points.is_empty(), "{id}: no point written twice");
    }
    assert_eq!(wh.queries.load(Ordering::SeqCst), 1, "no query ran again");
    // a permanent failure is answered again with the same body, without new points
    let mut bad = wrangling_record();
    bad["payload"]["variables"].as_object_mut().unwrap().remove("partner");
    let first = app.post(&[JSON], push_body(&bad, "b-1")).await;
    let again = app.post(&[JSON], push_body(&bad, "b-1")).await;
    assert_eq!((first.status, again.status), (400, 400));
    assert_eq!(first.body, again.body);
    assert_eq!(names(&first.points), ["handler_execution_failure", "handler_execution_failure"]);
    assert!(again.points.is_empty());
}

#[tokio::test]
async fn a_redelivery_during_the_first_attempt_waits_for_it() {
    let wh = Arc::new(ScriptedWarehouse { delay: Duration::from_millis(500), ..Default::default() });
    let app = Arc::new(app_with(wh.clone(), Options::default()).await);
    let rec = wrangling_record();
    let (a, b) = tokio::join!(app.post(&[JSON], push_body(&rec, "m-1")), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.post(&[JSON], push_body(&rec, "m-1")).await
    });
    assert_eq!((a.status, b.status), (204, 204));
    assert_eq!(wh.queries.load(Ordering::SeqCst), 1);
    assert_eq!(a.points.len() + b.points.len(), 4, "the event's points once");
}

#[tokio::test]
async fn an_event_retried_after_a_transient_failure_completes_cleanly() {
    let wh = Arc::new(ScriptedWarehouse::default());
    wh.fail_queries.store(1, Ordering::SeqCst);
    let app = app_with(wh.clone(), Options::default()).await;
    let rec = wrangling_record();
    let first = app.post(&[JSON], push_body(&rec, "m-1")).await;
    assert_eq!(first.status, 503);
    // only the failure gauges were written, so the retry writes each point once
    assert_eq!(names(&first.points), ["handler_execution_failure", "handler_execution_failure"]);
    assert!(first.points.iter().all(|p| p.labels["error_class"] == "transient"));
    let retry = app.post(&[JSON], push_body(&rec, "m-1")).await;
    assert_eq!(retry.status, 204);
    assert_eq!(
        names(&retry.points),
        [
            "claims/pipeline/filtered_pre/vl_pago/total",
            "claims/pipeline/filtered_pre/vl_pago/relative",
            "claims/pipeline/processable/vl_pago/total",
            "claims/pipeline/processable/vl_pago/relative"
        ]
    );
    assert_eq!(retry.points[1].value, 0.25);
}

// ------------------------------------------------------------------ hostile input

#[tokio::test]
async fn tables_outside_the_allowed_datasets_are_refused_before_any_query() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let app = TestApp::with_options(
        Some(PRE_AND_PROCESSABLE),
        None,
        wh.clone(),
        Options::default(),
        Some(vec!["tmp_abertta".into()]),
    )
    .await;
    assert_eq!(app.post(&[JSON], push_body(&wrangling_record(), "ok")).await.status, 204);
    let mut rec = wrangling_record();
    rec["payload"]["variables"]["refined_processable_claims_output_table"] = json!("other-project.secrets.users");
    let ans = app.post(&[JSON], push_body(&rec, "bad")).await;
    assert_eq!(ans.status, 400);
    assert_eq!(ans.body["error"], "invalid_table_reference");
    assert!(ans.body["message"].as_str().unwrap().contains("ALLOWED_DATASETS"));
    assert_eq!(wh.queries.load(Ordering::SeqCst), 1, "only the allowed event queried");
}

#[tokio::test]
async fn hostile_bodies_get_4xx_and_leave_the_process_serving() {
    let app = app_with(Arc::new(ScriptedWarehouse::default()), Options::default()).await;
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested_data = {
        let inner = format!("{}1{}", "{\"a\":".repeat(5000), "}".repeat(5000));
        Push::new(inner).message_id("x").without_subscription().body()
    };
    for (ct, body) in [
        ("application/json", deep),
        ("application/json", nested_data),
        ("application/json", "\u{0}\u{1}\u{2}".to_string()),
        ("application/json", "{\"message\": {\"data\": 12}}".to_string()),
        ("application/json", "{\"specversion\": \"1.0\", \"id\": 1}".to_string()),
        ("application/cloudevents+json", "[]".to_string()),
    ] {
        let ans = app.post(&[("content-type", ct)], body).await;
        assert!((400..500).contains(&ans.status), "{ans:?}", ans = ans.body);
    }
    assert_eq!(app.post(&[JSON], push_body(&wrangling_record(), "fine")).await.status, 204);
}

/// A body that is not JSON, not UTF-8, empty or too large is named as `body` in the answer,
/// which keeps every other key of an error body.
#[tokio::test]
async fn errors_of_the_whole_body_name_the_body() {
    let app =
        app_with(Arc::new(ScriptedWarehouse::default()), Options { max_body_bytes: 4096, ..Default::default() }).await;
    let cases: [(&[u8], u16, &str); 6] = [
        (b"{\"message\": ", 400, "malformed_event"),
        (b"not json", 400, "malformed_event"),
        (b"{\"source_timestamp\": \"\xff\xfe\"}", 400, "malformed_event"),
        (b"\xff\xfe\x00{", 400, "malformed_event"),
        (b"   ", 400, "malformed_event"),
        (&[b' '; 5000], 413, "payload_too_large"),
    ];
    for (body, status, error) in cases {
        let ans = app.post(&[JSON], body).await;
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        assert_eq!(ans.status, status, "{shown}: {}", ans.body);
        assert_eq!(ans.body["error"], error, "{shown}: {}", ans.body);
        assert_eq!(ans.body["class"], "permanent", "{shown}: {}", ans.body);
        assert_eq!(ans.body["field"], "body", "{shown}: {}", ans.body);
        assert!(!ans.body["message"].as_str().unwrap_or("").is_empty(), "{shown}: {}", ans.body);
    }
    // in binary mode the body is the event's data
    let ce = [JSON, ("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "s"), ("ce-type", "t")];
    let ans = app.post(&ce, "{not json").await;
    assert_eq!((ans.status, ans.body["field"].as_str()), (400, Some("body")), "{}", ans.body);
}

/// Methods and paths no route takes: 405 on a served path (with `Allow`), 404 elsewhere, both
/// with a JSON error body; a POST to any path is still a delivery.
#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_in_json() {
    let app = app_with(Arc::new(ScriptedWarehouse::default()), Options::default()).await;
    for (method, path, allow) in
        [("PUT", "/", "GET,HEAD,POST"), ("GET", "/api/v1/lineage", "POST"), ("POST", "/healthz", "GET,HEAD")]
    {
        let ans = app.request(method, path, &[], "").await;
        assert_eq!(ans.status, 405, "{method} {path}");
        assert_eq!(ans.body["error"], "method_not_allowed", "{method} {path}: {}", ans.body);
        assert_eq!(ans.body["class"], "permanent", "{method} {path}");
        assert_eq!(ans.body["field"], "method", "{method} {path}");
        let message = ans.body["message"].as_str().unwrap();
        assert!(message.contains(method) && message.contains(path), "{message}");
        let methods = |list: &str| {
            let mut v: Vec<String> = list.split(',').map(|m| m.trim().to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(methods(ans.headers["allow"].to_str().unwrap()), methods(allow), "{method} {path}");
        let listed = message.rsplit("takes ").next().unwrap();
        assert_eq!(methods(listed), methods(allow), "the message lists the methods of the Allow header");
        assert_eq!(ans.headers["content-type"], "application/json");
    }
    for (method, path) in [("GET", "/nope"), ("DELETE", "/events"), ("GET", "/api/v1/lineage/x")] {
        let ans = app.request(method, path, &[], "").await;
        assert_eq!(ans.status, 404, "{method} {path}: {}", ans.body);
        assert_eq!(ans.body["error"], "not_found", "{method} {path}");
        assert_eq!(ans.body["class"], "permanent", "{method} {path}");
        assert_eq!(ans.body["field"], "path", "{method} {path}");
        assert!(ans.body["message"].as_str().unwrap().contains(path), "{}", ans.body);
    }
    let long = format!("/{}", "x".repeat(5000));
    let ans = app.request("GET", &long, &[], "").await;
    assert_eq!(ans.status, 404);
    assert!(ans.body["message"].as_str().unwrap().len() < 400, "the path is not echoed in full");
    // a POST to any path is a delivery
    let ans = app.request("POST", "/events", &[JSON], push_body(&wrangling_record(), "any-path")).await;
    assert_eq!(ans.status, 204, "{}", ans.body);
}

/// `Content-Encoding`: gzip is undone, identity is the body as it is, any other coding is 415
/// naming the header (never read as JSON).
#[tokio::test]
async fn unsupported_content_encodings_are_415_naming_the_header() {
    use std::io::Write;
    let app = app_with(Arc::new(ScriptedWarehouse::default()), Options::default()).await;
    let body = push_body(&wrangling_record(), "plain");
    for coding in ["br", "deflate", "compress", "zstd", "gzip, br"] {
        for path in ["/", "/api/v1/lineage"] {
            let ans = app.request("POST", path, &[JSON, ("content-encoding", coding)], body.clone()).await;
            assert_eq!(ans.status, 415, "{coding} on {path}: {}", ans.body);
            assert_eq!(ans.body["error"], "unsupported_media_type", "{coding}");
            assert_eq!(ans.body["field"], "header content-encoding", "{coding}");
            assert!(ans.body["message"].as_str().unwrap().contains("gzip"), "{}", ans.body);
            assert_eq!(ans.headers["accept-encoding"], "gzip, identity", "{coding}");
        }
    }
    let ans = app.post(&[JSON, ("content-encoding", "identity")], body).await;
    assert_eq!(ans.status, 204, "identity: {}", ans.body);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(push_body(&wrangling_record(), "gzipped").as_bytes()).unwrap();
    let ans = app.post(&[JSON, ("content-encoding", "gzip")], gz.finish().unwrap()).await;
    assert_eq!(ans.status, 204, "gzip: {}", ans.body);
    let ans = app.post(&[JSON, ("content-encoding", "gzip")], "not gzip").await;
    assert_eq!((ans.status, ans.body["field"].as_str()), (400, Some("body")), "{}", ans.body);
}

/// `/api/v1/lineage` takes JSON (what OpenLineage's HTTP transport sends) or, as `POST /`, no
/// content type; any other is 415.
#[tokio::test]
async fn lineage_refuses_content_types_that_are_not_json() {
    let app = app_with(Arc::new(ScriptedWarehouse::default()), Options::default()).await;
    let event = json!({"eventType": "START", "eventTime": "2026-11-30T10:00:00Z",
        "run": {"runId": "0190a5c4-7a8e-7a63-9c5e-0b3c3f0c9d51"}, "job": {"namespace": "etl", "name": "daily"},
        "producer": "https://example.com/runner"})
    .to_string();
    for ct in ["text/plain", "application/octet-stream", "text/html", "application/x-www-form-urlencoded"] {
        let ans = app.request("POST", "/api/v1/lineage", &[("content-type", ct)], event.clone()).await;
        assert_eq!(ans.status, 415, "{ct}: {}", ans.body);
        assert_eq!(ans.body["error"], "unsupported_media_type", "{ct}");
        assert_eq!(ans.body["field"], "header content-type", "{ct}");
    }
    for headers in [&[JSON][..], &[("content-type", "application/json; charset=utf-8")], &[]] {
        let ans = app.request("POST", "/api/v1/lineage", headers, event.clone()).await;
        assert_eq!(ans.status, 204, "{headers:?}: {}", ans.body);
    }
}

// ------------------------------------------------------------------ push authentication (OIDC)

struct Keypair {
    kid: String,
    der: Vec<u8>,
    jwk: Value,
}

fn keypair(kid: &str) -> Keypair {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be())});
    Keypair { kid: kid.into(), der: key.to_pkcs1_der().unwrap().as_bytes().to_vec(), jwk }
}

const AUDIENCE: &str = "https://metrics-fn.example.com/";
const PUSHER: &str = "pubsub-push@my-project.iam.gserviceaccount.com";

fn token(k: &Keypair, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(k.kid.clone());
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_der(&k.der)).unwrap()
}

fn claims(over: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut c = json!({"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSHER, "email_verified": true,
                       "iat": now, "exp": now + 3600, "sub": "1137", "azp": "1137"});
    for (k, v) in over.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test]
async fn push_tokens_are_verified() {
    let k1 = keypair("kid-1");
    let k2 = keypair("kid-2");
    let served = Arc::new(std::sync::Mutex::new(vec![k1.jwk.clone()]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(served.clone(), fetches.clone()).await;
    let keys =
        Keys::Url { http: reqwest::Client::new(), url, ttl: Duration::from_secs(300), min_refresh: Duration::ZERO };
    let verifier = Arc::new(PushVerifier::new(AUDIENCE, vec![PUSHER.to_string()], keys));
    let app =
        app_with(Arc::new(ScriptedWarehouse::default()), Options { verifier: Some(verifier), ..Default::default() })
            .await;
    let send = |tok: Option<String>| {
        let body = push_body(&wrangling_record(), "m");
        let app = &app;
        async move {
            match tok {
                Some(t) => app.post(&[JSON, ("authorization", &format!("Bearer {t}"))], body).await,
                None => app.post(&[JSON], body).await,
            }
        }
    };
    // accepted: both issuer spellings
    assert_eq!(send(Some(token(&k1, claims(json!({}))))).await.status, 204);
    assert_eq!(send(Some(token(&k1, claims(json!({"iss": "accounts.google.com"}))))).await.status, 204);
    assert_eq!(send(Some(token(&k1, claims(json!({}))))).await.status, 204);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "3 verifications, 1 JWKS fetch (cached)");
    // refused, each with 401 and a reason, never echoing the token
    let now = chrono::Utc::now().timestamp();
    let cases = [
        ("wrong audience", Some(token(&k1, claims(json!({"aud": "https://other/"}))))),
        ("wrong issuer", Some(token(&k1, claims(json!({"iss": "https://evil.example.com"}))))),
        ("wrong e-mail", Some(token(&k1, claims(json!({"email": "x@y.iam.gserviceaccount.com"}))))),
        ("e-mail not verified", Some(token(&k1, claims(json!({"email_verified": false}))))),
        ("expired", Some(token(&k1, claims(json!({"exp": now - 3600, "iat": now - 7200}))))),
        ("unknown key", Some(token(&k2, claims(json!({}))))),
        ("no header", None),
        ("not a JWT", Some("abc.def".to_string())),
    ];
    for (what, tok) in cases {
        let ans = send(tok.clone()).await;
        assert_eq!(ans.status, 401, "{what}: {}", ans.body);
        assert_eq!(ans.body["error"], "unauthorized", "{what}");
        if let Some(t) = tok {
            assert!(!ans.body.to_string().contains(&t), "{what}: the token is not echoed");
        }
        assert!(ans.points.is_empty(), "{what}: nothing processed");
    }
    // key rotation: the unknown kid made one more fetch; once served, it is accepted
    let before = fetches.load(Ordering::SeqCst);
    served.lock().unwrap().push(k2.jwk.clone());
    assert_eq!(send(Some(token(&k2, claims(json!({}))))).await.status, 204);
    assert_eq!(fetches.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn made_up_key_ids_cannot_make_every_request_fetch_the_keys() {
    let k1 = keypair("kid-1");
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(Arc::new(std::sync::Mutex::new(vec![k1.jwk.clone()])), fetches.clone()).await;
    let keys = Keys::Url {
        http: reqwest::Client::new(),
        url,
        ttl: Duration::from_secs(300),
        min_refresh: Duration::from_secs(60),
    };
    let verifier = PushVerifier::new(AUDIENCE, vec![PUSHER.to_string()], keys);
    for i in 0..20 {
        let forged = keypair(&format!("made-up-{i}"));
        let t = token(&forged, claims(json!({})));
        assert!(verifier.verify(Some(&format!("Bearer {t}"))).await.is_err());
    }
    assert!(fetches.load(Ordering::SeqCst) <= 2, "{} fetches", fetches.load(Ordering::SeqCst));
    let ok = token(&k1, claims(json!({})));
    assert_eq!(verifier.verify(Some(&format!("Bearer {ok}"))).await.unwrap(), PUSHER);
}
