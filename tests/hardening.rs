//! Hardening (issue: bounded memory and time for every request, de-duplication that cannot be
//! poisoned, nothing echoed or logged that should not be). Each test reproduces one fault of the
//! issue; the memory, slow-client and connection tests run against the real binary.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::app::TestApp;
use common::fakes::warehouse::ScriptedWarehouse;
use common::fixtures::{PRE_AND_PROCESSABLE, record, wrangling_record};
use common::process::{Process, Running, free_port};
use common::push::push_body;
use pipeline_run_metrics::ingress::http::Options;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const JSON: (&str, &str) = ("content-type", "application/json");

// ------------------------------------------------------------------ the real binary

/// The binary serving on 127.0.0.1 in local mode (a BigQuery emulator address that nothing
/// calls: these tests send records that need no query).
struct Served {
    run: Running,
    addr: String,
}

impl Served {
    async fn start(extra: &[(&str, &str)]) -> Served {
        Served::start_process(Process::binary(), extra).await
    }

    async fn start_process(process: Process, extra: &[(&str, &str)]) -> Served {
        let port = free_port();
        let mut run = process
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")
            .envs(extra.iter().copied())
            .spawn();
        run.wait_listening(Duration::from_secs(20)).await;
        Served { run, addr: format!("127.0.0.1:{port}") }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Resident memory of the process (VmRSS), in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.run.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// The stderr lines (JSON logs) written so far.
    fn logs(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = self.run.stderr.next(Duration::from_millis(300)) {
            out.push(l);
        }
        out
    }
}

async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// A RUNNING `pipeline_run` record (only the built-in count matches: no query).
fn running(partner: &str) -> Value {
    record("pipesv2_wrangling", "RUNNING", "2025-11-05T18:23:31.393Z", json!({"partner": partner}))
}

/// A wrangling record whose every table variable is valid except `refined_processable_claims_output_table`.
fn wrangling_with_table(table: &str) -> Value {
    record(
        "pipesv2_wrangling",
        "COMPLETED",
        "2025-11-05T18:23:31.393Z",
        json!({"partner": "abertta", "refined_processable_claims_output_table": table,
               "refined_unprocessable_claims_output_table": "tmp_abertta.u",
               "refined_processable_claims_historical_table": "tmp_abertta.hp",
               "refined_unprocessable_claims_historical_table": "tmp_abertta.hu"}),
    )
}

/// Reads until the peer closes the connection (EOF or reset) or `limit` passes: the bytes read,
/// and whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return (got, false);
        }
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

// ------------------------------------------------------------------ 1. memory bounded by bytes

/// The attack: deliveries with a 6.5 MB uuid and a 6.5 MB invalid table value. The
/// answers are short, and the resident memory neither jumps nor grows with the deliveries (it
/// used to reach 480 MB and stay there for the de-duplication window).
#[tokio::test]
async fn huge_identifiers_and_values_leave_memory_bounded() {
    let served = Served::start(&[]).await;
    let url = served.url();
    // a first ordinary delivery, so that the baseline includes what serving one costs
    assert_eq!(post(&url, &[JSON], push_body(&running("abertta"), "warm-up")).await.0, 204);
    let baseline = served.rss();
    let huge = |c: char| c.to_string().repeat(6_500_000);
    let attack = |i: usize| {
        let mut rec = wrangling_with_table(&format!("tmp_abertta.{}-x", huge('t')));
        rec["uuid"] = format!("{i}{}", huge('u')).into();
        rec.to_string()
    };
    // the same value under an ordinary uuid: processed, answered and remembered
    let bad_value = |_: usize| wrangling_with_table(&format!("tmp_abertta.{}-x", huge('t'))).to_string();
    // Three rounds of ten deliveries: the memory they leave behind is the allocator's working set
    // (it does not give every freed page back), not what they kept: it stops growing.
    let mut after_round = Vec::new();
    for round in 0..3 {
        for i in 0..5 {
            for body in [attack(round * 10 + i), bad_value(i)] {
                let (status, text) = post(&url, &[JSON], body).await;
                assert_eq!(status, 400, "{}", &text[..text.len().min(300)]);
                assert!(text.len() < 4096, "a {} byte answer", text.len());
            }
        }
        after_round.push(served.rss());
    }
    let mb = |b: u64| b as f64 / 1e6;
    let rounds: Vec<String> = after_round.iter().map(|b| format!("{:.1} MB", mb(*b))).collect();
    eprintln!("RSS: baseline {:.1} MB, after each round of 10 deliveries: {}", mb(baseline), rounds.join(", "));
    let last = *after_round.last().unwrap();
    assert!(last < baseline + 160_000_000, "RSS went from {:.1} MB to {:.1} MB", mb(baseline), mb(last));
    assert!(
        last < after_round[1] + 40_000_000,
        "RSS keeps growing with the deliveries: {:.1} MB, then {:.1} MB",
        mb(after_round[1]),
        mb(last)
    );
    // and the process still serves
    assert_eq!(post(&url, &[JSON], push_body(&running("abertta"), "after")).await.0, 204);
}

/// Identifiers longer than the documented maximum are refused (400) without being echoed.
#[tokio::test]
async fn identifiers_longer_than_the_maximum_are_refused() {
    let app = TestApp::with_options(
        Some(PRE_AND_PROCESSABLE),
        None,
        Arc::new(ScriptedWarehouse::default()),
        Options::default(),
        None,
    )
    .await;
    let long = "x".repeat(10_000);
    let mut rec = wrangling_record();
    rec["uuid"] = long.clone().into();
    let by_uuid = app.post(&[JSON], rec.to_string()).await;
    let by_message_id = app.post(&[JSON], push_body(&wrangling_record(), &long)).await;
    let ce = json!({"specversion": "1.0", "id": long, "source": "//pubsub", "type": "t", "data": wrangling_record()});
    let by_ce_id = app.post(&[("content-type", "application/cloudevents+json")], ce.to_string()).await;
    for (what, ans) in [("uuid", by_uuid), ("message id", by_message_id), ("CloudEvent id", by_ce_id)] {
        assert_eq!(ans.status, 400, "{what}: {}", ans.body);
        assert_eq!(ans.body["error"], "malformed_event", "{what}");
        assert!(!ans.body.to_string().contains(&long[..300]), "{what}: echoed");
        assert!(ans.points.is_empty(), "{what}: processed");
    }
}

// ------------------------------------------------------------------ 2. slow bodies and admission

/// Connections that send headers and a byte of their body must not take the in-flight slots:
/// other deliveries are still admitted.
#[tokio::test]
async fn slow_request_bodies_do_not_take_the_admission_slots() {
    let served = Served::start(&[("MAX_IN_FLIGHT", "4")]).await;
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(&served.addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = post(&served.url(), &[JSON], push_body(&running("abertta"), "m-1")).await;
    assert_eq!(status, 204, "{body}");
    drop(slow);
}

// ------------------------------------------------------------------ 3. connection timeouts

/// A connection that sends nothing, or half a request line, is closed after the header-read
/// timeout.
#[tokio::test]
async fn incomplete_request_heads_are_closed_after_the_header_read_timeout() {
    let served = Served::start(&[("HEADER_READ_TIMEOUT_SECS", "1"), ("IDLE_TIMEOUT_SECS", "60")]).await;
    let mut silent = TcpStream::connect(&served.addr).await.unwrap();
    let mut half = TcpStream::connect(&served.addr).await.unwrap();
    half.write_all(b"POST / HT").await.unwrap();
    let t0 = Instant::now();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(6)).await;
    assert!(closed, "a silent connection is still open after {:?}", t0.elapsed());
    let (_, closed) = read_until_closed(&mut half, Duration::from_secs(6)).await;
    assert!(closed, "a half request line is still open after {:?}", t0.elapsed());
}

/// A body that does not arrive within the body-read timeout gets 408 and the connection closes.
#[tokio::test]
async fn a_body_slower_than_the_body_read_timeout_gets_408() {
    let served = Served::start(&[("BODY_READ_TIMEOUT_SECS", "1")]).await;
    let mut s = TcpStream::connect(&served.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(6)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(closed, "still open");
}

/// An idle keep-alive connection is closed after the idle timeout, which is distinct from the
/// header-read timeout.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let served = Served::start(&[("HEADER_READ_TIMEOUT_SECS", "1"), ("IDLE_TIMEOUT_SECS", "3")]).await;
    let mut s = TcpStream::connect(&served.addr).await.unwrap();
    let get = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    s.write_all(get).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // idle for longer than the header-read timeout: still open, and serves a second request
    tokio::time::sleep(Duration::from_millis(1800)).await;
    s.write_all(get).await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "idle is not the header timeout");
    let t0 = Instant::now();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(8)).await;
    assert!(closed, "an idle connection is still open after {:?}", t0.elapsed());
    assert!(t0.elapsed() >= Duration::from_secs(2), "closed after {:?}, before the idle timeout", t0.elapsed());
}

/// With few file descriptors, idle connections that hold all of them must not keep a valid
/// delivery from being answered.
#[tokio::test]
async fn idle_connections_cannot_exhaust_the_file_descriptors() {
    let limited =
        Process::new("sh").clean_env(&["PATH"]).args(["-c", "ulimit -n 64 && exec \"$0\"", common::process::BIN]);
    let served = Served::start_process(limited, &[("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut idle = Vec::new();
    for _ in 0..80 {
        idle.push(TcpStream::connect(&served.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        post(&served.url(), &[JSON], push_body(&running("abertta"), "m-1")),
    )
    .await
    .expect("a valid request got no answer within 15 s");
    assert_eq!(answer.0, 204, "{}", answer.1);
    drop(idle);
}
// ------------------------------------------------------------------ 4. de-duplication

/// A record posted first under a real event's uuid must not take the real record's place in the
/// de-duplication window.
#[tokio::test]
async fn another_record_under_a_known_uuid_is_processed() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let app = TestApp::with_options(Some(PRE_AND_PROCESSABLE), None, wh.clone(), Options::default(), None).await;
    // a RUNNING record under the uuid of the real COMPLETED one
    let real = wrangling_record();
    let mut forged = real.clone();
    forged["payload"]["status"] = "RUNNING".into();
    assert_eq!(app.post(&[JSON], push_body(&forged, "f-1")).await.status, 204);
    let ans = app.post(&[JSON], push_body(&real, "r-1")).await;
    assert_eq!(ans.status, 204);
    assert_eq!(ans.points.len(), 4, "the real record is processed");
    assert_eq!(wh.queries.load(Ordering::SeqCst), 1);
    // its redelivery is still a duplicate
    let again = app.post(&[JSON], push_body(&real, "r-1")).await;
    assert_eq!((again.status, again.points.len()), (204, 0));
    assert_eq!(wh.queries.load(Ordering::SeqCst), 1);

    // a bad record (no partner: 400) under the uuid of a real one does not send it to the DLQ
    let real = wrangling_record();
    let mut bad = real.clone();
    bad["payload"]["variables"].as_object_mut().unwrap().remove("partner");
    assert_eq!(app.post(&[JSON], push_body(&bad, "b-1")).await.status, 400);
    let ans = app.post(&[JSON], push_body(&real, "r-2")).await;
    assert_eq!(ans.status, 204, "{}", ans.body);
    assert_eq!(ans.points.len(), 4);
}
// ------------------------------------------------------------------ 5. JWKS refresh

mod oidc {
    use base64::Engine;
    use serde_json::{Value, json};

    pub const AUDIENCE: &str = "https://metrics-fn.example.com/";
    pub const PUSHER: &str = "pubsub-push@my-project.iam.gserviceaccount.com";

    pub struct Keypair {
        pub kid: String,
        der: Vec<u8>,
        pub jwk: Value,
    }

    pub fn keypair(kid: &str) -> Keypair {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64(key.n().to_bytes_be()),
                         "e": b64(key.e().to_bytes_be())});
        Keypair { kid: kid.into(), der: key.to_pkcs1_der().unwrap().as_bytes().to_vec(), jwk }
    }

    /// A valid push token signed by `k`, naming `kid` as its key id.
    pub fn token_with_kid(k: &Keypair, kid: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSHER,
                            "email_verified": true, "iat": now, "exp": now + 3600});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_der(&k.der)).unwrap()
    }

    pub fn token(k: &Keypair) -> String {
        token_with_kid(k, &k.kid)
    }
}

fn verifier(url: String, min_refresh: Duration) -> pipeline_run_metrics::ingress::auth::PushVerifier {
    verifier_with_ttl(url, Duration::from_secs(300), min_refresh)
}

fn verifier_with_ttl(
    url: String,
    ttl: Duration,
    min_refresh: Duration,
) -> pipeline_run_metrics::ingress::auth::PushVerifier {
    use pipeline_run_metrics::ingress::auth::{Keys, PushVerifier};
    let keys = Keys::Url { http: reqwest::Client::new(), url, ttl, min_refresh };
    PushVerifier::new(oidc::AUDIENCE, vec![oidc::PUSHER.to_string()], keys)
}

/// Past its time to live the key set is still used while the key server fails (and refreshes
/// stay rate-limited): a key server outage does not turn every push into a 401.
#[tokio::test]
async fn an_expired_key_set_is_used_while_the_key_server_fails() {
    use common::fakes::jwks::{JwksScript, scripted_jwks_server};
    let k1 = oidc::keypair("kid-1");
    let script = Arc::new(JwksScript::default());
    script.keys.lock().unwrap().push(k1.jwk.clone());
    let v = verifier_with_ttl(scripted_jwks_server(script.clone()).await, Duration::ZERO, Duration::from_secs(60));
    assert!(v.verify(Some(&format!("Bearer {}", oidc::token(&k1)))).await.is_ok());
    script.fail.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        assert!(v.verify(Some(&format!("Bearer {}", oidc::token(&k1)))).await.is_ok());
    }
    assert_eq!(script.fetches.load(Ordering::SeqCst), 1);
}

/// Unknown key ids while the key server fails: the refreshes are rate-limited all the same.
#[tokio::test]
async fn failed_key_refreshes_are_rate_limited_too() {
    use common::fakes::jwks::{JwksScript, scripted_jwks_server};
    let k1 = oidc::keypair("kid-1");
    let script = Arc::new(JwksScript::default());
    script.keys.lock().unwrap().push(k1.jwk.clone());
    let v = verifier(scripted_jwks_server(script.clone()).await, Duration::from_secs(60));
    assert!(v.verify(Some(&format!("Bearer {}", oidc::token(&k1)))).await.is_ok());
    assert_eq!(script.fetches.load(Ordering::SeqCst), 1);
    script.fail.store(true, Ordering::SeqCst);
    for i in 0..20 {
        let t = oidc::token_with_kid(&k1, &format!("made-up-{i}"));
        assert!(v.verify(Some(&format!("Bearer {t}"))).await.is_err());
    }
    assert!(script.fetches.load(Ordering::SeqCst) <= 2, "{} fetches", script.fetches.load(Ordering::SeqCst));
    // a key server that never answered: no fetch per request either
    let script = Arc::new(JwksScript::default());
    script.fail.store(true, Ordering::SeqCst);
    let v = verifier(scripted_jwks_server(script.clone()).await, Duration::from_secs(60));
    for _ in 0..20 {
        assert!(v.verify(Some(&format!("Bearer {}", oidc::token(&k1)))).await.is_err());
    }
    assert!(script.fetches.load(Ordering::SeqCst) <= 2, "{} fetches", script.fetches.load(Ordering::SeqCst));
}

/// A slow key server does not stall requests whose key is cached.
#[tokio::test]
async fn valid_tokens_do_not_wait_for_a_slow_key_refresh() {
    use common::fakes::jwks::{JwksScript, scripted_jwks_server};
    let k1 = oidc::keypair("kid-1");
    let script = Arc::new(JwksScript::default());
    script.keys.lock().unwrap().push(k1.jwk.clone());
    let v = Arc::new(verifier(scripted_jwks_server(script.clone()).await, Duration::ZERO));
    assert!(v.verify(Some(&format!("Bearer {}", oidc::token(&k1)))).await.is_ok());
    script.delay_ms.store(3000, Ordering::SeqCst);
    let unknown = oidc::token_with_kid(&k1, "rotated-kid");
    let refresh = {
        let v = v.clone();
        tokio::spawn(async move { v.verify(Some(&format!("Bearer {unknown}"))).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    assert!(v.verify(Some(&format!("Bearer {}", oidc::token(&k1)))).await.is_ok());
    assert!(t0.elapsed() < Duration::from_secs(1), "a valid token waited {:?} for the key refresh", t0.elapsed());
    assert!(refresh.await.unwrap().is_err());
}

/// The 401 answer does not repeat what the token says (its key id here).
#[tokio::test]
async fn the_401_answer_does_not_echo_the_token() {
    use common::fakes::jwks::{JwksScript, scripted_jwks_server};
    let k1 = oidc::keypair("kid-1");
    let script = Arc::new(JwksScript::default());
    script.keys.lock().unwrap().push(k1.jwk.clone());
    let v = Arc::new(verifier(scripted_jwks_server(script).await, Duration::from_secs(60)));
    let options = Options { verifier: Some(v), ..Default::default() };
    let app =
        TestApp::with_options(Some(PRE_AND_PROCESSABLE), None, Arc::new(ScriptedWarehouse::default()), options, None)
            .await;
    let kid = "k".repeat(100_000);
    let t = oidc::token_with_kid(&k1, &kid);
    let auth = format!("Bearer {t}");
    let ans = app.post(&[JSON, ("authorization", auth.as_str())], push_body(&wrangling_record(), "m")).await;
    assert_eq!(ans.status, 401);
    let text = ans.body.to_string();
    assert!(text.len() < 1024, "a {} byte answer", text.len());
    assert!(!text.contains("kkkkkkkkkkkkkkkk"), "{text}");
}
// ------------------------------------------------------------------ 6. tables that may be read

/// Without ALLOWED_DATASETS (local mode), only the data project's datasets may be read, and
/// metadata views and meta-tables never.
#[tokio::test]
async fn metadata_views_and_other_projects_are_refused_by_default() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let app = TestApp::with_options(Some(PRE_AND_PROCESSABLE), None, wh.clone(), Options::default(), None).await;
    for table in [
        "other-project.secrets.users",
        "region-us.INFORMATION_SCHEMA.JOBS",
        "INFORMATION_SCHEMA.TABLES",
        "tmp_abertta.INFORMATION_SCHEMA",
        "tmp_abertta.__TABLES__",
        "test-project.tmp_abertta.__TABLES_SUMMARY__",
    ] {
        let mut rec = wrangling_record();
        rec["payload"]["variables"]["refined_processable_claims_output_table"] = table.into();
        let ans = app.post(&[JSON], push_body(&rec, table)).await;
        assert_eq!(ans.status, 400, "{table}: {}", ans.body);
        assert_eq!(ans.body["error"], "invalid_table_reference", "{table}");
    }
    assert_eq!(wh.queries.load(Ordering::SeqCst), 0, "no query ran");
    assert_eq!(app.post(&[JSON], push_body(&wrangling_record(), "ok")).await.status, 204);
}

/// Outside local mode the function does not start without ALLOWED_DATASETS.
#[test]
fn production_needs_allowed_datasets() {
    let out = Process::binary().env("METRICS_BACKEND", "stdout").output();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ALLOWED_DATASETS"), "{err}");
}

/// A warehouse that rejects every query with a text naming what it read.
struct Rejecting;

#[async_trait::async_trait]
impl pipeline_run_metrics::warehouse::Warehouse for Rejecting {
    async fn table_exists(
        &self,
        _: &pipeline_run_metrics::warehouse::TableRef,
    ) -> Result<bool, pipeline_run_metrics::warehouse::WarehouseError> {
        Ok(true)
    }
    async fn query(
        &self,
        _: &str,
        _: &[(String, pipeline_run_metrics::warehouse::Param)],
    ) -> Result<Vec<pipeline_run_metrics::warehouse::Row>, pipeline_run_metrics::warehouse::WarehouseError> {
        Err(pipeline_run_metrics::warehouse::WarehouseError::Rejected(
            "HTTP 400: No matching signature for operator = for argument types: STRING, INT64 in secret_dataset.people"
                .into(),
        ))
    }
}

/// BigQuery's error text is logged, not returned: the answer names the handler and the kind.
#[tokio::test]
async fn bigquery_error_text_is_not_returned() {
    let app =
        TestApp::with_options(Some(PRE_AND_PROCESSABLE), None, Arc::new(Rejecting), Options::default(), None).await;
    let ans = app.post(&[JSON], push_body(&wrangling_record(), "m")).await;
    assert_eq!(ans.status, 400);
    assert_eq!(ans.body["error"], "query_rejected");
    assert_eq!(ans.body["handler"], "PreFilteredWranglingHandler");
    let text = ans.body.to_string();
    assert!(!text.contains("secret_dataset") && !text.contains("No matching signature"), "{text}");
}
// ------------------------------------------------------------------ 7. values in logs and answers

/// A table variable's value (an e-mail address) reaches neither the event's log line nor, more
/// than once, the answer.
#[tokio::test]
async fn variable_values_stay_out_of_logs_and_appear_once_in_answers() {
    let mut served = Served::start(&[]).await;
    let email = "ops.lead@example.com";
    let (status, body) = post(&served.url(), &[JSON], push_body(&wrangling_with_table(email), "m-1")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.matches(email).count() <= 1, "the value appears {} times: {body}", body.matches(email).count());
    let logs = served.logs();
    let line = logs.iter().find(|l| l.contains("event failed permanently")).unwrap_or_else(|| panic!("{logs:?}"));
    for l in &logs {
        assert!(!l.contains("example.com"), "a log line carries the value: {l}");
    }
    assert!(line.contains("refined_processable_claims_output_table"), "the variable is named: {line}");
    // the log line names the value by the fingerprint the answer gives
    let answer: Value = serde_json::from_str(&body).unwrap();
    let fingerprint = answer["value_fingerprint"].as_str().expect("a fingerprint in the answer");
    assert_eq!(fingerprint.len(), 16);
    assert!(line.contains(fingerprint), "{line}");
}

/// The reference's "Batch tables not found: <a> or <b>" quotes table variables: the answer
/// keeps it, the log line does not.
#[tokio::test]
async fn missing_table_messages_quote_values_in_answers_only() {
    let mut served = Served::start(&[("BIGQUERY_EMULATOR_HOST", common::bigquery::emulator())]).await;
    let rec = record(
        "pipesv2_wrangling",
        "COMPLETED",
        "2025-11-05T18:23:31.393Z",
        json!({"partner": "abertta", "refined_processable_claims_output_table": "tmp_nowhere_hx.processable_x",
               "refined_unprocessable_claims_output_table": "tmp_nowhere_hx.unprocessable_x",
               "refined_processable_claims_historical_table": "tmp_nowhere_hx.hp",
               "refined_unprocessable_claims_historical_table": "tmp_nowhere_hx.hu"}),
    );
    let (status, body) = post(&served.url(), &[JSON], push_body(&rec, "m-1")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Batch tables not found: tmp_nowhere_hx.processable_x or"), "{body}");
    let logs = served.logs();
    let line = logs.iter().find(|l| l.contains("event failed permanently")).unwrap_or_else(|| panic!("{logs:?}"));
    assert!(line.contains("Batch tables not found"), "{line}");
    for l in &logs {
        assert!(!l.contains("tmp_nowhere_hx"), "a log line carries a table variable: {l}");
    }
}

/// A malformed OTLP header pair is reported without its value.
#[test]
fn malformed_otlp_headers_are_not_printed() {
    let out = Process::binary()
        .env("BIGQUERY_EMULATOR_HOST", "127.0.0.1:1")
        .env("METRICS_BACKEND", "otlp")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,Authorization: Bearer s3cr3t-t0ken")
        .output();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
    assert!(!err.contains("s3cr3t") && !err.contains("acme"), "{err}");
}
// ------------------------------------------------------------------ 8. labels

/// A label value longer than the backends accept does not reach the output whole.
#[tokio::test]
async fn label_values_are_bounded() {
    let mut served = Served::start(&[]).await;
    let partner = "p".repeat(2_000_000);
    let (status, body) = post(&served.url(), &[JSON], push_body(&running(&partner), "m-1")).await;
    assert_eq!(status, 204, "{body}");
    let line = loop {
        let line = served.run.stdout.next(Duration::from_secs(5)).expect("a metric line");
        if line.contains("mageai/pipeline_run/count") {
            break line;
        }
    };
    assert!(line.len() < 4096, "a {} byte metric line", line.len());
    let point = common::app::parse_point(&line);
    assert!(point.labels["partner"].len() <= 1024);
}

/// Distinct values of a label are bounded per instance; the rest are folded into "other".
#[tokio::test]
async fn label_cardinality_is_bounded() {
    let mut served = Served::start(&[("MAX_LABEL_VALUES", "20")]).await;
    for i in 0..50 {
        let (status, body) = post(&served.url(), &[JSON], push_body(&running(&format!("partner-{i}")), "m")).await;
        assert_eq!(status, 204, "{body}");
    }
    // the run counts (lifecycle points without a partner label come too)
    let mut partners = std::collections::BTreeSet::new();
    let mut counts = 0;
    while counts < 50 {
        let line = served.run.stdout.next(Duration::from_secs(5)).expect("a metric line");
        let point = common::app::parse_point(&line);
        if point.name == "mageai/pipeline_run/count" {
            counts += 1;
            partners.insert(point.labels["partner"].clone());
        }
    }
    assert!(partners.len() <= 21, "{} distinct partners", partners.len());
    assert!(partners.contains("other"), "{partners:?}");
}

/// The bound holds for lifecycle counters and histograms as for claim gauges: every point passes
/// the same guard.
#[tokio::test]
async fn lifecycle_points_are_guarded_too() {
    let mut served = Served::start(&[("MAX_LABEL_VALUES", "20")]).await;
    for i in 0..50 {
        let mut rec =
            record(&format!("pipeline-{i}"), "COMPLETED", "2025-11-05T18:23:31.393Z", json!({"partner": "abertta"}));
        rec["payload"]["id"] = (1000 + i).into();
        rec["payload"]["started_at"] = "2025-11-05T18:20:00Z".into();
        rec["payload"]["completed_at"] = "2025-11-05T18:23:31Z".into();
        let (status, body) = post(&served.url(), &[JSON], push_body(&rec, "m")).await;
        assert_eq!(status, 204, "{body}");
    }
    let mut pipelines: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    while let Some(line) = served.run.stdout.next(Duration::from_secs(2)) {
        let point = common::app::parse_point(&line);
        if let Some(p) = point.labels.get("pipeline").or(point.labels.get("pipeline_uuid")) {
            pipelines.entry(point.name.clone()).or_default().insert(p.clone());
        }
    }
    assert!(pipelines.contains_key("pipeline.run.finished"), "{:?}", pipelines.keys());
    for (metric, values) in &pipelines {
        assert!(values.len() <= 21, "{metric}: {} distinct pipelines", values.len());
    }
}
