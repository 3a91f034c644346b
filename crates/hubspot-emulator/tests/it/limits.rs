//! Rate limits, injected faults and the request journal over real HTTP
//! (HubSpot docs: error handling, usage guidelines; sources in docs/emulator.md).

use std::time::{Duration, Instant};

use crate::support::{contact_upserts, start, start_with, Api};
use hubspot_emulator::{FaultConfig, OAuthClient, StaticToken};
use hubspot_model::Secret;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn ten_second_window_per_app_with_headers() {
    let em = start_with(|c| c.max_requests_per_10s = Some(3)).await;
    let api = Api::new(&em);
    for remaining in ["2", "1", "0"] {
        let resp = api.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["x-hubspot-ratelimit-interval-milliseconds"], "10000");
        assert_eq!(h["x-hubspot-ratelimit-max"], "3");
        assert_eq!(h["x-hubspot-ratelimit-remaining"], remaining);
        assert!(h.get("x-hubspot-ratelimit-daily").is_none(), "no daily limit configured");
    }
    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-hubspot-ratelimit-remaining"], "0");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["message"], "You have reached your ten_secondly_rolling limit.");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(body["groupName"].as_str().unwrap().starts_with("publicapi:private_app-api-calls-ten-secondly:"));
    assert!(body["correlationId"].is_string());
    assert!(body.get("category").is_none());
    // Another app has its own window.
    assert_eq!(Api::with_token(&em, Some("pat-na1-other")).get("/crm/v3/objects/contacts").await.0, 200);
    // The limit can change at run time.
    em.set_rate_limit(None);
    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-hubspot-ratelimit-max").is_none());
    assert_eq!(em.count_status(429), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn daily_limit_per_account_and_none_for_oauth() {
    let em = start_with(|c| {
        c.daily_limit = Some(2);
        c.max_requests_per_10s = Some(100);
        c.static_tokens = vec![
            StaticToken { token: "pat-a".into(), scopes: vec!["*".into()] },
            StaticToken { token: "pat-b".into(), scopes: vec!["*".into()] },
        ];
        c.oauth_clients =
            vec![OAuthClient { client_id: "app".into(), client_secret: Secret::new("s"), scopes: vec![] }];
    })
    .await;
    let a = Api::with_token(&em, Some("pat-a"));
    let b = Api::with_token(&em, Some("pat-b"));
    let resp = a.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(resp.headers()["x-hubspot-ratelimit-daily"], "2");
    assert_eq!(resp.headers()["x-hubspot-ratelimit-daily-remaining"], "1");
    let resp = b.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(
        resp.headers()["x-hubspot-ratelimit-daily-remaining"],
        "0",
        "the daily limit is shared by the account's apps"
    );
    let (status, body) = a.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, 429);
    assert_eq!(body["message"], "You have reached your daily limit.");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "DAILY");
    assert!(body["requestId"].is_string());
    assert!(body.get("category").is_none());

    // OAuth tokens have no daily limit and get no daily headers.
    let anonymous = Api::with_token(&em, None);
    let resp = anonymous
        .raw(Method::GET, "/oauth/authorize?client_id=app&redirect_uri=http%3A%2F%2Fx%2Fcb&scope=crm.lists.read", None)
        .await;
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let (_, tokens) = anonymous
        .post_raw("/oauth/v1/token", "application/x-www-form-urlencoded", format!("grant_type=authorization_code&client_id=app&client_secret=s&redirect_uri=http%3A%2F%2Fx%2Fcb&code={code}"))
        .await;
    let oauth = Api::with_token(&em, tokens["access_token"].as_str());
    let resp = oauth.raw(Method::GET, "/crm/v3/lists/1", None).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-hubspot-ratelimit-max"], "100");
    assert!(resp.headers().get("x-hubspot-ratelimit-daily").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_injected_before_any_write() {
    let em = start_with(|c| c.faults.error_rate = 1.0).await;
    let api = Api::new(&em);
    for _ in 0..8 {
        let (status, _) = api.post("/crm/v3/objects/contacts/batch/upsert", contact_upserts("e", 2)).await;
        assert!([500, 502, 503, 504].contains(&status), "{status}");
    }
    assert_eq!(em.record_count("contacts"), 0);
    em.set_faults(FaultConfig::default());
    assert_eq!(api.post("/crm/v3/objects/contacts/batch/upsert", contact_upserts("e", 2)).await.0, 200);
    assert_eq!(em.record_count("contacts"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_connections_get_no_answer() {
    let em = start_with(|c| c.faults.drop_rate = 1.0).await;
    let api = Api::new(&em);
    let result = api
        .client
        .post(format!("{}/crm/v3/objects/contacts/batch/upsert", api.base))
        .bearer_auth("t")
        .json(&contact_upserts("d", 1))
        .send()
        .await;
    assert!(result.is_err(), "the connection closes without an answer");
    assert_eq!(em.record_count("contacts"), 0);
    assert_eq!(em.count_status(0), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_migration_bursts_and_latency() {
    let em = start().await;
    let api = Api::new(&em);
    em.set_faults(FaultConfig { locked_rate: 1.0, ..FaultConfig::default() });
    let (status, body) = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, 423);
    assert_eq!(body["status"], "error");

    em.set_faults(FaultConfig { migration_rate: 1.0, ..FaultConfig::default() });
    let resp = api.raw(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(resp.status(), 477);
    assert_eq!(resp.headers()["retry-after"], "1");

    em.set_faults(FaultConfig { burst_429: 2, ..FaultConfig::default() });
    for _ in 0..2 {
        let (status, body) = api.post("/crm/v3/objects/contacts", json!({"properties": {}})).await;
        assert_eq!(status, 429);
        assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    }
    assert_eq!(api.post("/crm/v3/objects/contacts", json!({"properties": {}})).await.0, 201);
    assert_eq!(em.record_count("contacts"), 1);

    em.set_faults(FaultConfig { latency_ms: 200, ..FaultConfig::default() });
    let started = Instant::now();
    assert_eq!(api.get("/crm/v3/objects/contacts").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_records_every_request() {
    let em = start().await;
    let api = Api::new(&em);
    api.post("/crm/v3/objects/contacts/batch/upsert", contact_upserts("j", 3)).await;
    api.post("/crm/objects/2026-03/contacts/batch/upsert", contact_upserts("k", 3)).await;
    api.get("/crm/v3/objects/contacts?limit=1").await;
    api.get("/crm/v3/objects/widgets").await;
    assert_eq!(em.count_requests("POST", "/batch/upsert"), 2);
    assert_eq!(em.count_requests("get", "/objects/"), 2);
    assert_eq!(em.count_status(200), 3);
    assert_eq!(em.count_status(400), 1);
    let journal = em.journal();
    assert_eq!(journal.len(), 4);
    assert_eq!(journal[0].method, "POST");
    assert_eq!(journal[0].path, "/crm/v3/objects/contacts/batch/upsert");
    assert!(journal[0].request_bytes > 100 && journal[0].response_bytes > 100);
    assert_eq!(journal[2].query, "limit=1");
    em.clear_journal();
    assert!(em.journal().is_empty());
    em.shutdown().await;
}
