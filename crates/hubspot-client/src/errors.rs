//! What can go wrong talking to HubSpot, and how HubSpot's error bodies are read.
//!
//! `HubSpotError` is what callers branch on; its messages say what failed and what to do, and
//! never carry the token. `ApiError` is a lenient reading of HubSpot's error bodies: every field
//! is optional (HubSpot's own advice), bodies may be HTML or JSON without `category`, and the
//! real reason of a validation error often hides in a JSON list inside `message`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Longest body excerpt kept in an error.
const EXCERPT_CHARS: usize = 300;

/// An error the HubSpot client could not turn into per-record outcomes.
#[derive(Debug, thiserror::Error)]
pub enum HubSpotError {
    /// The settings cannot work; nothing was sent.
    #[error("HubSpot account {account}: invalid client settings: {problems}.")]
    InvalidSettings { account: String, problems: String },

    /// 401: the token is missing, wrong, revoked or expired.
    #[error(
        "HubSpot account {account} refused the access token ({category}: {message}). Check the \
         account's token in the config (a private app or service key token, pat-...), that it \
         belongs to this portal, and that it was not rotated or revoked."
    )]
    Unauthorized { account: String, category: String, message: String },

    /// The OAuth login no longer works: HubSpot refused the refresh token (revoked, or the app
    /// was uninstalled) or the access token it just issued. Only a new login helps.
    #[error(
        "HubSpot account {account}: the OAuth login no longer works: {detail}. Run `hubsync auth \
         login --account {account}` again to sign in; nothing was lost, the rows not delivered \
         are sent by the next run."
    )]
    ReauthRequired { account: String, detail: String },

    /// 403 MISSING_SCOPES: the token works but lacks scopes for this endpoint.
    #[error(
        "HubSpot account {account}: the token lacks the scopes needed for {endpoint}; HubSpot \
         asks for one of: {}. Add the scope to the private app or service key, then update the \
         token if HubSpot issued a new one.", scopes.join(", ")
    )]
    MissingScopes { account: String, endpoint: String, scopes: Vec<String> },

    /// 403 for another reason than scopes.
    #[error("HubSpot account {account} forbids {endpoint} ({category}): {message}")]
    Forbidden { account: String, endpoint: String, category: String, message: String },

    /// The account's daily request limit is used up.
    #[error(
        "HubSpot account {account} has reached its daily API limit ({limit} requests a day). \
         HubSpot resets it at midnight in the portal's time zone; syncs to this account resume \
         after that. Raise the limit with an API limit increase, or schedule fewer or smaller \
         syncs."
    )]
    DailyLimit { account: String, limit: u64 },

    /// A transient failure persisted through every retry.
    #[error(
        "HubSpot account {account}: {endpoint} still failed after {attempts} attempts (last: \
         {last}). HubSpot may be degraded or unreachable; the records not acknowledged are \
         sent again by the next run."
    )]
    RetriesExhausted { account: String, endpoint: String, attempts: u32, last: String },

    /// HubSpot asks to wait longer than the client is willing to block (477 with a long
    /// `Retry-After`, typically an account migration).
    #[error(
        "HubSpot account {account}: {endpoint} answered {status} and asks to retry in \
         {retry_after_secs} s (an account migration or lock); try the sync again after that."
    )]
    RetryLater { account: String, endpoint: String, status: u16, retry_after_secs: u64 },

    /// The request could not be sent or its answer not read, and retrying is not allowed
    /// (a non-idempotent create whose delivery is uncertain) or not possible.
    #[error("HubSpot account {account}: {endpoint} failed in transport: {detail}")]
    Transport { account: String, endpoint: String, detail: String },

    /// HubSpot answered with a readable error that the caller cannot turn into outcomes.
    #[error("HubSpot account {account}: {endpoint} was rejected with {status} {code}: {message}")]
    Api { account: String, endpoint: String, status: u16, code: String, message: String },

    /// HubSpot answered with something the client does not understand.
    #[error("HubSpot account {account}: {endpoint} answered {status} with an unexpected body: {body}")]
    Unexpected { account: String, endpoint: String, status: u16, body: String },
}

impl HubSpotError {
    /// A stable, bounded code for metrics labels and run records.
    pub fn code(&self) -> &'static str {
        match self {
            HubSpotError::InvalidSettings { .. } => "INVALID_SETTINGS",
            HubSpotError::Unauthorized { .. } => "UNAUTHORIZED",
            HubSpotError::ReauthRequired { .. } => "REAUTH_REQUIRED",
            HubSpotError::MissingScopes { .. } => "MISSING_SCOPES",
            HubSpotError::Forbidden { .. } => "FORBIDDEN",
            HubSpotError::DailyLimit { .. } => "DAILY_LIMIT",
            HubSpotError::RetriesExhausted { .. } => "RETRIES_EXHAUSTED",
            HubSpotError::RetryLater { .. } => "RETRY_LATER",
            HubSpotError::Transport { .. } => "TRANSPORT_ERROR",
            HubSpotError::Api { .. } => "API_ERROR",
            HubSpotError::Unexpected { .. } => "UNEXPECTED_RESPONSE",
        }
    }

    /// True for a 404 answer: what the request named (a list, a record) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, HubSpotError::Api { status: 404, .. } | HubSpotError::Unexpected { status: 404, .. })
    }

    /// True when no later request to the account can succeed before a person or the clock
    /// intervenes (bad token, missing scopes, daily limit): the runner should stop, not go on
    /// with the next batch.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            HubSpotError::InvalidSettings { .. }
                | HubSpotError::Unauthorized { .. }
                | HubSpotError::ReauthRequired { .. }
                | HubSpotError::MissingScopes { .. }
                | HubSpotError::Forbidden { .. }
                | HubSpotError::DailyLimit { .. }
                | HubSpotError::RetryLater { .. }
        )
    }
}

/// One HubSpot error, read leniently from a top-level error body or one entry of a batch
/// answer's `errors[]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    pub category: Option<String>,
    pub sub_category: Option<String>,
    pub message: String,
    /// `errors[].code` of the first detail that has one.
    pub detail_code: Option<String>,
    /// `errors[].message` of the first detail.
    pub detail_message: Option<String>,
    /// `context` (values are lists of strings; single values are wrapped).
    pub context: BTreeMap<String, Vec<String>>,
    /// `errors[].context.requiredGranularScopes`, gathered from every detail.
    pub required_scopes: Vec<String>,
    /// `policyName` of 429 bodies (`TEN_SECONDLY_ROLLING`, `DAILY`, `SECONDLY`).
    pub policy_name: Option<String>,
    /// `errorType` of 429 bodies (`RATE_LIMIT`).
    pub error_type: Option<String>,
}

impl ApiError {
    /// Reads a response body; `None` when it is not a JSON object (HTML 404 pages, empty bodies).
    pub fn parse(body: &str) -> Option<ApiError> {
        let value: Value = serde_json::from_str(body.trim()).ok()?;
        if !value.is_object() {
            return None;
        }
        Some(ApiError::from_value(&value))
    }

    /// Reads one error object (top level or a batch `errors[]` entry).
    pub fn from_value(value: &Value) -> ApiError {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        let mut err = ApiError {
            category: text("category"),
            sub_category: value.get("subCategory").and_then(value_to_string),
            message: text("message").unwrap_or_default(),
            policy_name: text("policyName"),
            error_type: text("errorType"),
            context: read_context(value.get("context")),
            ..ApiError::default()
        };
        if let Some(details) = value.get("errors").and_then(Value::as_array) {
            for detail in details {
                if err.detail_code.is_none() {
                    err.detail_code = detail.get("code").and_then(Value::as_str).map(str::to_string);
                }
                if err.detail_message.is_none() {
                    err.detail_message = detail.get("message").and_then(Value::as_str).map(str::to_string);
                }
                let ctx = read_context(detail.get("context"));
                if let Some(scopes) = ctx.get("requiredGranularScopes") {
                    err.required_scopes.extend(scopes.iter().cloned());
                }
            }
        }
        if let Some(scopes) = err.context.get("requiredGranularScopes") {
            err.required_scopes.extend(scopes.iter().cloned());
        }
        let mut seen = std::collections::HashSet::new();
        err.required_scopes.retain(|s| seen.insert(s.clone()));
        err
    }

    /// The most specific code: `errors[].code`, else the `error` field of the JSON list embedded
    /// in `message` ("Property values were not valid: [...]"), else `category`, else `fallback`.
    pub fn code_or(&self, fallback: &str) -> String {
        if let Some(code) = &self.detail_code {
            return code.clone();
        }
        if let Some(code) = embedded_details(&self.message).into_iter().find_map(|d| d.code) {
            return code;
        }
        self.category.clone().unwrap_or_else(|| fallback.to_string())
    }

    /// The most specific message: the embedded detail's message ("Email address x is
    /// invalid"), else `errors[].message` when the top message is generic, else `message`.
    pub fn best_message(&self) -> String {
        let embedded: Vec<String> = embedded_details(&self.message).into_iter().filter_map(|d| d.message).collect();
        if !embedded.is_empty() {
            return embedded.join("; ");
        }
        if self.message.is_empty() {
            return self.detail_message.clone().unwrap_or_default();
        }
        self.message.clone()
    }

    /// The `context` values under `key` (e.g. `objectWriteTraceId`, `ids`).
    pub fn context_values(&self, key: &str) -> &[String] {
        self.context.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// One entry of the JSON list HubSpot embeds in validation messages.
#[derive(Debug, Clone, PartialEq)]
struct EmbeddedDetail {
    code: Option<String>,
    message: Option<String>,
}

/// Parses the JSON list embedded in a message like `Property values were not valid: [{...}]`.
/// Returns nothing when there is no parsable list (plain messages, `[12877907025]` id lists).
fn embedded_details(message: &str) -> Vec<EmbeddedDetail> {
    let Some(start) = message.find("[{") else {
        return Vec::new();
    };
    let Some(end) = message.rfind("}]") else {
        return Vec::new();
    };
    if end < start {
        return Vec::new();
    }
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&message[start..end + 2]) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| EmbeddedDetail {
            code: item.get("error").and_then(Value::as_str).map(str::to_string),
            message: item.get("message").and_then(Value::as_str).map(str::to_string),
        })
        .collect()
}

fn read_context(value: Option<&Value>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let Some(Value::Object(map)) = value else {
        return out;
    };
    for (key, v) in map {
        let values = match v {
            Value::Array(items) => items.iter().filter_map(value_to_string).collect(),
            other => value_to_string(other).into_iter().collect(),
        };
        out.insert(key.clone(), values);
    }
    out
}

/// A JSON string or number as a string (HubSpot sends ids both ways).
pub(crate) fn value_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A short, single-line excerpt of a body for error messages, with `secret` masked in case the
/// server echoed it.
pub(crate) fn excerpt(body: &str, secret: &str) -> String {
    let mut text: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if !secret.is_empty() {
        text = text.replace(secret, "***");
    }
    if text.is_empty() {
        return "(empty body)".to_string();
    }
    if text.chars().count() > EXCERPT_CHARS {
        let cut: String = text.chars().take(EXCERPT_CHARS).collect();
        return format!("{cut}…");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_embedded_validation_list() {
        let body = r#"{"status":"error","category":"VALIDATION_ERROR",
          "message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Email address not-an-email is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]",
          "context":{"objectWriteTraceId":["7"]}}"#;
        let e = ApiError::parse(body).unwrap();
        assert_eq!(e.code_or("X"), "INVALID_EMAIL");
        assert_eq!(e.best_message(), "Email address not-an-email is invalid");
        assert_eq!(e.context_values("objectWriteTraceId"), ["7".to_string()]);
    }

    #[test]
    fn prefers_error_details_codes() {
        let body = r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"testproperty\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"testproperty\"}]",
          "errors":[{"message":"Property \"testproperty\" does not exist","code":"PROPERTY_DOESNT_EXIST_DETAIL","context":{"propertyName":["testproperty"]}}],
          "category":"VALIDATION_ERROR"}"#;
        let e = ApiError::parse(body).unwrap();
        assert_eq!(e.code_or("X"), "PROPERTY_DOESNT_EXIST_DETAIL");
        assert_eq!(e.best_message(), "Property \"testproperty\" does not exist");
    }

    #[test]
    fn falls_back_to_category_then_fallback() {
        let e = ApiError::parse(
            r#"{"status":"error","message":"Contact already exists. Existing ID: 37765128953","category":"CONFLICT"}"#,
        )
        .unwrap();
        assert_eq!(e.code_or("X"), "CONFLICT");
        assert_eq!(e.best_message(), "Contact already exists. Existing ID: 37765128953");

        let e = ApiError::parse(
            r#"{"status":"error","message":"Duplicate IDs found in batch input: [12877907025]. IDs must be unique","context":{"ids":["12877907025"]}}"#,
        )
        .unwrap();
        assert_eq!(e.code_or("HTTP_400"), "HTTP_400");
        assert_eq!(e.context_values("ids"), ["12877907025".to_string()]);
    }

    #[test]
    fn reads_missing_scopes_and_rate_limit_bodies() {
        let e = ApiError::parse(
            r#"{"status":"error","message":"This app hasn't been granted all required scopes to make this call.",
              "errors":[{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":["crm.schemas.deals.read","crm.objects.deals.read"]}}],
              "links":{"scopes":"https://developers.hubspot.com/scopes"},"category":"MISSING_SCOPES"}"#,
        )
        .unwrap();
        assert_eq!(e.category.as_deref(), Some("MISSING_SCOPES"));
        assert_eq!(e.required_scopes, ["crm.schemas.deals.read", "crm.objects.deals.read"]);

        let e = ApiError::parse(
            r#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","policyName":"SECONDLY"}"#,
        )
        .unwrap();
        assert_eq!(e.policy_name.as_deref(), Some("SECONDLY"));
        assert_eq!(e.error_type.as_deref(), Some("RATE_LIMIT"));
        assert_eq!(e.category, None);
    }

    #[test]
    fn html_and_garbage_are_not_api_errors() {
        assert!(ApiError::parse("<html><body>Not found</body></html>").is_none());
        assert!(ApiError::parse("").is_none());
        assert!(ApiError::parse("[1,2]").is_none());
        // A bracket that is not a JSON list does not confuse the code lookup.
        let e = ApiError::parse(r#"{"message":"bad [{ not json }] here"}"#).unwrap();
        assert_eq!(e.code_or("HTTP_400"), "HTTP_400");
    }

    #[test]
    fn context_accepts_numbers_and_single_values() {
        let e = ApiError::parse(r#"{"message":"m","context":{"ids":[12,"13"],"one":"x"}}"#).unwrap();
        assert_eq!(e.context_values("ids"), ["12".to_string(), "13".to_string()]);
        assert_eq!(e.context_values("one"), ["x".to_string()]);
        assert!(e.context_values("none").is_empty());
    }

    #[test]
    fn excerpts_are_short_single_line_and_masked() {
        assert_eq!(excerpt("a\n  b", ""), "a b");
        assert_eq!(excerpt("", "t"), "(empty body)");
        assert_eq!(excerpt("token pat-1 echoed", "pat-1"), "token *** echoed");
        let long = "x".repeat(1000);
        assert!(excerpt(&long, "").chars().count() <= EXCERPT_CHARS + 1);
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let e = HubSpotError::MissingScopes {
            account: "main".into(),
            endpoint: "GET properties".into(),
            scopes: vec!["crm.schemas.deals.read".into()],
        };
        assert!(e.to_string().contains("crm.schemas.deals.read"));
        assert!(e.is_fatal());
        let e = HubSpotError::DailyLimit { account: "main".into(), limit: 250_000 };
        assert!(e.to_string().contains("midnight in the portal's time zone"));
        assert_eq!(e.code(), "DAILY_LIMIT");
    }
}
