//! Shared helpers for the emulator integration tests: start an emulator, talk to it over
//! real HTTP, get `(status, json)` back.

use hubspot_emulator::{Emulator, EmulatorConfig};
use reqwest::{Method, Response};
use serde_json::Value;

pub async fn start() -> Emulator {
    start_with(|_| {}).await
}

pub async fn start_with(change: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig::default();
    change(&mut config);
    Emulator::start(config).await.expect("emulator starts")
}

/// A client bound to one emulator and one bearer token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub token: Option<String>,
}

impl Api {
    pub fn new(emulator: &Emulator) -> Api {
        Api::with_token(emulator, Some("pat-na1-test"))
    }

    pub fn with_token(emulator: &Emulator, token: Option<&str>) -> Api {
        Api {
            base: emulator.base_url(),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            token: token.map(String::from),
        }
    }

    pub async fn raw(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("request reaches the emulator")
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        json_of(self.raw(method, path, body).await).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// POSTs a raw body with a content type (form posts, malformed JSON).
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let mut req =
            self.client.post(format!("{}{}", self.base, path)).header("content-type", content_type).body(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        json_of(req.send().await.expect("request reaches the emulator")).await
    }
}

/// Status and body as JSON (`Null` when empty, a string when not JSON).
pub async fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

/// Asserts the keys every HubSpot error body has, and returns the body for more checks.
pub fn assert_error<'a>(body: &'a Value, category: Option<&str>, message: &str) -> &'a Value {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["message"], message, "{body}");
    assert!(body["correlationId"].as_str().is_some_and(|c| c.len() == 36), "{body}");
    match category {
        Some(c) => assert_eq!(body["category"], c, "{body}"),
        None => assert!(body.get("category").is_none(), "{body}"),
    }
    body
}

/// `n` contacts as upsert inputs keyed by email, each with a trace id.
pub fn contact_upserts(prefix: &str, n: usize) -> Value {
    let inputs: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "id": format!("{prefix}{i}@example.com"),
                "idProperty": "email",
                "objectWriteTraceId": format!("t{i}"),
                "properties": {"firstname": format!("First{i}"), "lastname": "Test"},
            })
        })
        .collect();
    serde_json::json!({ "inputs": inputs })
}
