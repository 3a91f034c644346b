//! Authentication over real HTTP: the OAuth flow, token introspection, static tokens with
//! scopes, and HubSpot's 401/403 bodies (HubSpot docs: error handling, OAuth and scopes; sources in docs/emulator.md).

use std::time::Duration;

use crate::support::{assert_error, start, start_with, Api};
use hubspot_emulator::{EmulatorConfig, OAuthClient, StaticToken};
use hubspot_model::Secret;
use reqwest::Method;
use serde_json::{json, Value};

const AUTH_MISSING: &str = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";

fn with_client(c: &mut EmulatorConfig) {
    c.oauth_clients = vec![OAuthClient {
        client_id: "app-1".into(),
        client_secret: Secret::new("s3cret"),
        scopes: vec![
            "oauth".into(),
            "crm.objects.contacts.read".into(),
            "crm.objects.contacts.write".into(),
            "crm.lists.read".into(),
        ],
    }];
}

/// Runs authorize + token exchange and returns the token response.
async fn authorize_and_exchange(api: &Api, scope: &str) -> Value {
    let resp = api
        .raw(
            Method::GET,
            &format!("/oauth/authorize?client_id=app-1&redirect_uri=http%3A%2F%2Flocalhost%3A9000%2Fcb&scope={scope}&state=xyz"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with("http://localhost:9000/cb?"));
    let params: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert!(params.contains(&("state".into(), "xyz".into())));
    let code = params.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let form = format!("grant_type=authorization_code&client_id=app-1&client_secret=s3cret&redirect_uri=http%3A%2F%2Flocalhost%3A9000%2Fcb&code={code}");
    let (status, body) = api.post_raw("/oauth/v1/token", "application/x-www-form-urlencoded", form.clone()).await;
    assert_eq!(status, 200, "{body}");
    // A code works once.
    let (status, again) = api.post_raw("/oauth/v1/token", "application/x-www-form-urlencoded", form).await;
    assert_eq!(status, 400);
    assert_eq!(again["status"], "BAD_AUTH_CODE");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_code_flow_and_scoped_access() {
    let em = start_with(with_client).await;
    let anonymous = Api::with_token(&em, None);
    let tokens = authorize_and_exchange(&anonymous, "crm.objects.contacts.read%20oauth").await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 1800);
    assert!(tokens["refresh_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap().to_string();

    let api = Api::with_token(&em, Some(&access));
    let (status, _) = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, 200);
    let (status, body) = api.post("/crm/v3/objects/contacts", json!({"properties": {"email": "x@example.com"}})).await;
    assert_eq!(status, 403);
    assert_error(
        &body,
        Some("MISSING_SCOPES"),
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
    );
    assert_eq!(body["errors"][0]["message"], "One or more of the following scopes are required.");
    let required = body["errors"][0]["context"]["requiredGranularScopes"].as_array().unwrap();
    assert!(required.contains(&json!("crm.objects.contacts.write")));
    assert_eq!(body["links"], json!({"scopes": "https://developers.hubspot.com/scopes"}));
    assert_eq!(em.record_count("contacts"), 0);

    // Introspection.
    let (status, info) = anonymous.get(&format!("/oauth/v1/access-tokens/{access}")).await;
    assert_eq!(status, 200);
    assert_eq!(info["token"], access);
    assert_eq!(info["hub_id"], 12345678);
    assert_eq!(info["token_type"], "access");
    assert!(info["expires_in"].as_i64().unwrap() > 1790);
    assert!(info["scopes"].as_array().unwrap().contains(&json!("crm.objects.contacts.read")));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, info) = anonymous.get(&format!("/oauth/v1/refresh-tokens/{refresh}")).await;
    assert_eq!(status, 200);
    assert_eq!(info["client_id"], "app-1");
    let (status, info) = anonymous
        .post_raw(
            "/oauth/v3/token/introspect",
            "application/x-www-form-urlencoded",
            format!("client_id=app-1&client_secret=s3cret&token={access}"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["active"], true);
    assert_eq!(info["token_use"], "access");
    assert_eq!(anonymous.get("/oauth/v1/access-tokens/nope").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_grant_and_its_errors() {
    let em = start_with(with_client).await;
    let anonymous = Api::with_token(&em, None);
    let tokens = authorize_and_exchange(&anonymous, "crm.lists.read").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = format!("grant_type=refresh_token&client_id=app-1&client_secret=s3cret&refresh_token={refresh}");
    let (status, body) = anonymous.post_raw("/oauth/2026-03/token", "application/x-www-form-urlencoded", form).await;
    assert_eq!(status, 200);
    assert_ne!(body["access_token"], tokens["access_token"]);
    assert_eq!(body["hub_id"], 12345678, "v3 and dated token answers add hub_id and scopes");
    assert!(body["scopes"].as_array().unwrap().contains(&json!("crm.lists.read")));

    let (status, body) = anonymous
        .post_raw(
            "/oauth/v1/token",
            "application/x-www-form-urlencoded",
            "grant_type=refresh_token&client_id=app-1&client_secret=s3cret&refresh_token=bogus",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "error": "invalid_grant",
            "error_description": "refresh token is invalid, expired or revoked",
            "status": "BAD_REFRESH_TOKEN",
            "message": "refresh token is invalid, expired or revoked",
        })
    );
    let (status, body) = anonymous
        .post_raw(
            "/oauth/v1/token",
            "application/x-www-form-urlencoded",
            format!("grant_type=refresh_token&client_id=app-1&client_secret=wrong&refresh_token={refresh}"),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "BAD_CLIENT_SECRET");
    let resp = anonymous
        .raw(Method::GET, "/oauth/authorize?client_id=app-1&redirect_uri=http%3A%2F%2Fx%2Fcb&scope=tickets", None)
        .await;
    assert_eq!(resp.status(), 400, "a scope the app does not have");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_invalid_tokens_are_401() {
    let em = start_with(|c| {
        with_client(c);
        c.access_token_ttl_secs = 1;
    })
    .await;
    let anonymous = Api::with_token(&em, None);
    let (status, body) = anonymous.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, 401);
    assert_error(&body, Some("INVALID_AUTHENTICATION"), AUTH_MISSING);
    let (status, body) = Api::with_token(&em, Some("pat-na1-unknown")).get("/crm/v3/objects/contacts").await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");

    let tokens = authorize_and_exchange(&anonymous, "crm.objects.contacts.read").await;
    assert_eq!(tokens["expires_in"], 1);
    let api = Api::with_token(&em, tokens["access_token"].as_str());
    assert_eq!(api.get("/crm/v3/objects/contacts").await.0, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = api.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("The OAuth token used to make this call expired ") && message.ends_with(" second(s) ago."),
        "{message}"
    );
    assert!(body["context"]["expire time"][0].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn static_tokens_carry_their_scopes() {
    let em = start_with(|c| {
        c.static_tokens = vec![
            StaticToken { token: "pat-na1-reader".into(), scopes: vec!["crm.objects.contacts.read".into()] },
            StaticToken { token: "pat-na1-all".into(), scopes: vec!["*".into()] },
        ];
    })
    .await;
    let reader = Api::with_token(&em, Some("pat-na1-reader"));
    assert_eq!(reader.get("/crm/v3/objects/contacts").await.0, 200);
    let (status, body) = reader.post("/crm/v3/objects/contacts/batch/upsert", json!({"inputs": []})).await;
    assert_eq!(status, 403);
    assert_eq!(body["category"], "MISSING_SCOPES");
    let (status, body) = reader.get("/crm/v3/lists/1").await;
    assert_eq!(status, 403);
    assert_eq!(body["errors"][0]["context"]["requiredGranularScopes"], json!(["crm.lists.read"]));
    let (status, body) = reader.get("/crm/v3/objects/tickets").await;
    assert_eq!(status, 403);
    assert_eq!(body["errors"][0]["context"]["requiredGranularScopes"], json!(["tickets"]));
    let all = Api::with_token(&em, Some("pat-na1-all"));
    assert_eq!(all.post("/crm/v3/objects/contacts", json!({"properties": {}})).await.0, 201);
    assert_eq!(Api::with_token(&em, Some("anything")).get("/crm/v3/objects/contacts").await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_token_options_any_bearer_token_works() {
    let em = start().await;
    for token in ["pat-na1-whatever", "x"] {
        assert_eq!(Api::with_token(&em, Some(token)).get("/crm/v3/objects/deals").await.0, 200);
    }
    assert_eq!(Api::with_token(&em, None).get("/crm/v3/objects/deals").await.0, 401);
    // Any client may use OAuth too.
    let anonymous = Api::with_token(&em, None);
    let resp = anonymous
        .raw(Method::GET, "/oauth/authorize?client_id=any&redirect_uri=http%3A%2F%2Fx%2Fcb&scope=crm.lists.read", None)
        .await;
    assert_eq!(resp.status(), 302);
}
