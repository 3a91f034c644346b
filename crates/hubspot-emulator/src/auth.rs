//! Who is calling and what they may do: bearer tokens (static private-app / service-key
//! tokens, or OAuth access tokens the emulator issued), their scopes, and the scopes each
//! endpoint needs (HubSpot docs: OAuth and scopes; sources in docs/emulator.md).

use axum::http::HeaderMap;
use serde_json::json;

use super::clock;
use super::config::EmulatorConfig;
use super::reply::{HsError, HsResult, Reply};
use super::store::Store;

/// The scopes a token holds.
#[derive(Debug, Clone)]
pub(crate) enum Scopes {
    All,
    Some(Vec<String>),
}

impl Scopes {
    fn from_list(list: &[String]) -> Scopes {
        if list.iter().any(|s| s == "*") {
            Scopes::All
        } else {
            Scopes::Some(list.to_vec())
        }
    }

    fn has_any(&self, wanted: &[String]) -> bool {
        match self {
            Scopes::All => true,
            Scopes::Some(held) => wanted.iter().any(|w| held.contains(w)),
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    /// The app the burst window counts against: the static token, or the OAuth client id.
    pub app: String,
    pub oauth: bool,
    pub scopes: Scopes,
}

impl Auth {
    /// 403 `MISSING_SCOPES` unless the token holds one of `any_of` (HubSpot docs: error handling; sources in docs/emulator.md).
    pub(crate) fn require(&self, any_of: &[String]) -> HsResult<()> {
        if any_of.is_empty() || self.scopes.has_any(any_of) {
            return Ok(());
        }
        Err(HsError::new(
            403,
            "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
        )
        .errors(json!([{
            "message": "One or more of the following scopes are required.",
            "context": {"requiredGranularScopes": any_of},
        }]))
        .field("links", json!({"scopes": "https://developers.hubspot.com/scopes"}))
        .category("MISSING_SCOPES")
        .reply())
    }
}

fn invalid_authentication() -> Reply {
    Reply::error(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Resolves the caller: a static token, an OAuth access token, or (with no token options at
/// all) any bearer token with every scope.
pub(crate) fn authenticate(config: &EmulatorConfig, store: &Store, headers: &HeaderMap, now: i64) -> HsResult<Auth> {
    let token = bearer(headers).ok_or_else(invalid_authentication)?;
    if let Some(t) = config.static_tokens.iter().find(|t| t.token == token) {
        return Ok(Auth { app: t.token.clone(), oauth: false, scopes: Scopes::from_list(&t.scopes) });
    }
    if let Some(t) = store.tokens.access.get(token) {
        if now >= t.expires_at {
            let ago = (now - t.expires_at) / 1000;
            return Err(HsError::new(
                401,
                format!("The OAuth token used to make this call expired {ago} second(s) ago."),
            )
            .category("EXPIRED_AUTHENTICATION")
            .context(json!({"expire time": [clock::iso_millis(t.expires_at)]}))
            .reply());
        }
        return Ok(Auth { app: t.client_id.clone(), oauth: true, scopes: Scopes::from_list(&t.scopes) });
    }
    if config.static_tokens.is_empty() && config.oauth_clients.is_empty() {
        return Ok(Auth { app: token.to_string(), oauth: false, scopes: Scopes::All });
    }
    Err(invalid_authentication())
}

/// Read or write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// Scopes that grant access to records of a type (any one suffices).
pub(crate) fn object_scopes(type_id: &str, custom: bool, access: Access) -> Vec<String> {
    let verb = access.verb();
    let granular = |name: &str| {
        vec![
            format!("crm.objects.{name}.{verb}"),
            format!("crm.objects.{name}.sensitive.{verb}.v2"),
            format!("crm.objects.{name}.highly_sensitive.{verb}.v2"),
        ]
    };
    if custom {
        return vec![format!("crm.objects.custom.{verb}")];
    }
    match type_id {
        "0-1" => granular("contacts"),
        "0-2" => granular("companies"),
        "0-3" => granular("deals"),
        "0-5" => vec!["tickets".to_string()],
        "0-7" => vec![format!("crm.objects.products.{verb}"), "e-commerce".to_string()],
        "0-8" => vec![format!("crm.objects.line_items.{verb}"), "e-commerce".to_string()],
        "0-14" => vec![format!("crm.objects.quotes.{verb}")],
        "0-136" => vec![format!("crm.objects.leads.{verb}")],
        // Engagements (notes, calls, emails, meetings, tasks, communications) ride on the
        // contact scopes.
        _ => vec![format!("crm.objects.contacts.{verb}")],
    }
}

/// Scopes for a type's property definitions: the schema scope, or for reads the object scope.
pub(crate) fn property_scopes(type_id: &str, name: &str, custom: bool, access: Access) -> Vec<String> {
    let verb = access.verb();
    let schema_name = if custom {
        "custom"
    } else {
        match type_id {
            "0-1" => "contacts",
            "0-2" => "companies",
            "0-3" => "deals",
            "0-5" => "tickets",
            _ => name,
        }
    };
    let mut scopes = vec![format!("crm.schemas.{schema_name}.{verb}")];
    if access == Access::Read {
        scopes.extend(object_scopes(type_id, custom, Access::Read));
    }
    scopes
}

pub(crate) fn schema_scopes(access: Access) -> Vec<String> {
    vec![format!("crm.schemas.custom.{}", access.verb())]
}

pub(crate) fn list_scopes(access: Access) -> Vec<String> {
    match access {
        Access::Read => vec!["crm.lists.read".to_string()],
        Access::Write => vec!["crm.lists.write".to_string(), "cms.membership.access_groups.write".to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scopes_lists_the_alternatives() {
        let auth = Auth { app: "a".into(), oauth: false, scopes: Scopes::Some(vec!["crm.lists.read".into()]) };
        assert!(auth.require(&list_scopes(Access::Read)).is_ok());
        let reply = auth.require(&object_scopes("0-3", false, Access::Read)).unwrap_err();
        assert_eq!(reply.status, 403);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["category"], "MISSING_SCOPES");
        assert_eq!(body["errors"][0]["context"]["requiredGranularScopes"][0], "crm.objects.deals.read");
    }
}
