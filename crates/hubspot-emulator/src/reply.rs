//! Answers as HubSpot writes them: JSON bodies, the error envelope
//! (`{"status":"error","message",...,"category"}`), and the odd non-JSON answer.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// One HTTP answer, before the server adds rate-limit headers and writes it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Handlers return `Err(reply)` for any HubSpot error answer, so `?` reads naturally.
pub(crate) type HsResult<T> = Result<T, Reply>;

pub(crate) const JSON: &str = "application/json;charset=utf-8";

impl Reply {
    pub(crate) fn json(status: u16, body: &impl Serialize) -> Reply {
        // Serializing our own types into a Vec cannot fail; fall back to an empty object anyway.
        let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
        Reply { status, content_type: Some(JSON), body, headers: Vec::new() }
    }

    /// Like `json`, with room for `capacity` bytes reserved up front (big batch answers).
    pub(crate) fn json_sized(status: u16, body: &impl Serialize, capacity: usize) -> Reply {
        let mut buf = Vec::with_capacity(capacity);
        if serde_json::to_writer(&mut buf, body).is_err() {
            buf = b"{}".to_vec();
        }
        Reply { status, content_type: Some(JSON), body: buf, headers: Vec::new() }
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply { status, content_type: None, body: Vec::new(), headers: Vec::new() }
    }

    pub(crate) fn html(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: Some("text/html;charset=utf-8"),
            body: body.into().into_bytes(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The page HubSpot serves for a path or a record it does not know (recorded real HubSpot answers, docs/emulator.md; /// `text/html` with `x-hubspot-notfound: true`, not JSON).
    pub(crate) fn not_found_page() -> Reply {
        Reply::html(
            404,
            "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>\
             <p>The page you requested could not be found.</p></body></html>",
        )
        .with_header("x-hubspot-notfound", "true")
    }

    /// The standard error envelope with a category.
    pub(crate) fn error(status: u16, category: &str, message: impl Into<String>) -> Reply {
        HsError::new(status, message).category(category).reply()
    }

    /// `400 VALIDATION_ERROR` with a message.
    pub(crate) fn validation(message: impl Into<String>) -> Reply {
        Reply::error(400, "VALIDATION_ERROR", message)
    }

    /// The 400 for a body that does not parse (HubSpot docs: error handling; sources in docs/emulator.md; no `category`).
    pub(crate) fn invalid_json(err: &serde_json::Error) -> Reply {
        let text = err.to_string();
        let reason = match text.rfind(" at line ") {
            Some(at) => &text[..at],
            None => text.as_str(),
        };
        HsError::new(400, format!("Invalid input JSON on line {}, column {}: {}", err.line(), err.column(), reason))
            .reply()
    }
}

/// Parses a request body, answering HubSpot's 400 when it is not the JSON expected.
pub(crate) fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> HsResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(
            HsError::new(400, "Invalid input JSON on line 1, column 1: No content to map due to end-of-input").reply()
        );
    }
    serde_json::from_slice(body).map_err(|e| Reply::invalid_json(&e))
}

pub(crate) fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Builder for HubSpot's error envelope; fields left unset are left out of the body.
pub(crate) struct HsError {
    status: u16,
    body: Map<String, Value>,
}

impl HsError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        let mut body = Map::new();
        body.insert("status".into(), json!("error"));
        body.insert("message".into(), Value::String(message.into()));
        body.insert("correlationId".into(), Value::String(correlation_id()));
        HsError { status, body }
    }

    pub(crate) fn category(self, category: &str) -> Self {
        self.field("category", json!(category))
    }

    pub(crate) fn sub_category(self, sub_category: &str) -> Self {
        self.field("subCategory", json!(sub_category))
    }

    pub(crate) fn context(self, context: Value) -> Self {
        self.field("context", context)
    }

    pub(crate) fn errors(self, errors: Value) -> Self {
        self.field("errors", errors)
    }

    pub(crate) fn field(mut self, name: &str, value: Value) -> Self {
        self.body.insert(name.to_string(), value);
        self
    }

    pub(crate) fn reply(self) -> Reply {
        Reply::json(self.status, &Value::Object(self.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_gets_hubspots_message_without_category() {
        let reply = parse_body::<Value>(b"{\n  \"inputs\": [\n    oops").unwrap_err();
        assert_eq!(reply.status, 400);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["status"], "error");
        assert!(body["message"].as_str().unwrap().starts_with("Invalid input JSON on line 3, column"));
        assert!(body.get("category").is_none());
        assert!(body["correlationId"].as_str().is_some());
    }
}
