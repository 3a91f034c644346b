//! OAuth grants: authorization codes, access tokens with an expiry, refresh tokens.

use std::collections::HashMap;

/// A code handed out by `/oauth/authorize`, good for one token exchange.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub expires_at: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub expires_at: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct RefreshToken {
    pub client_id: String,
    pub scopes: Vec<String>,
}

#[derive(Default)]
pub(crate) struct TokenStore {
    pub codes: HashMap<String, AuthCode>,
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
}

impl TokenStore {
    /// Issues an access token (and a refresh token unless one is being reused).
    pub(crate) fn issue(
        &mut self,
        client_id: &str,
        scopes: &[String],
        ttl_ms: i64,
        now: i64,
        refresh: Option<String>,
    ) -> (String, String) {
        let access = format!("CN{}", uuid::Uuid::new_v4().simple());
        self.access.insert(
            access.clone(),
            AccessToken { client_id: client_id.to_string(), scopes: scopes.to_vec(), expires_at: now + ttl_ms },
        );
        let refresh = refresh.unwrap_or_else(|| format!("na1-{}", uuid::Uuid::new_v4()));
        self.refresh
            .entry(refresh.clone())
            .or_insert_with(|| RefreshToken { client_id: client_id.to_string(), scopes: scopes.to_vec() });
        (access, refresh)
    }
}
