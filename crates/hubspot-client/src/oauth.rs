//! OAuth 2.0 with HubSpot
//! (https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide):
//! the code exchange and the refresh at `/oauth/v1/token`, introspection at
//! `/oauth/v3/token/introspect` (a form body, so the token never shows in a path or a log line),
//! and `OAuthSession`, which hands the client an access token: refreshed before it expires, and
//! once more when HubSpot answers 401 `EXPIRED_AUTHENTICATION` (HubSpot warns a 401 alone is not a
//! sign to refresh, so the client refreshes on that category only).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::errors::{excerpt, ApiError, HubSpotError};
use hubspot_model::Secret;

/// Longest refresh margin: a token is refreshed when it has less than this left...
const MAX_REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;
/// ...or less than this share of its lifetime, for short-lived tokens.
const REFRESH_MARGIN_SHARE: i64 = 4;
/// Attempts at the token endpoint when it fails in transport or with a 5xx or 429.
const TOKEN_ATTEMPTS: u32 = 3;

/// The HubSpot app a user signs in through.
#[derive(Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: Secret,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp").field("client_id", &self.client_id).field("client_secret", &"***").finish()
    }
}

/// An access token and the refresh token that renews it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// When the access token expires, in ms since the Unix epoch.
    pub expires_at_ms: i64,
    /// Its lifetime when issued, in seconds (HubSpot: 1800).
    pub lifetime_secs: u64,
}

impl OAuthTokens {
    /// True when the access token expires within the refresh margin: five minutes, or a quarter
    /// of its lifetime when that is shorter.
    pub fn needs_refresh(&self, now_ms: i64) -> bool {
        let lifetime_ms = i64::try_from(self.lifetime_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let margin = (lifetime_ms / REFRESH_MARGIN_SHARE).min(MAX_REFRESH_MARGIN_MS);
        now_ms.saturating_add(margin) >= self.expires_at_ms
    }
}

/// What introspection says about an access token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenInfo {
    pub active: bool,
    /// The portal (HubSpot account id) the token belongs to.
    pub hub_id: Option<u64>,
    pub hub_domain: Option<String>,
    pub scopes: Vec<String>,
    pub expires_in_secs: Option<u64>,
}

/// Why a call to the token endpoints failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// HubSpot refused the grant (a bad or revoked refresh token, a used code, a wrong client).
    #[error("HubSpot refused it ({code}: {message})")]
    Refused { code: String, message: String },
    /// The request could not be sent, or HubSpot failed to answer it.
    #[error("{0}")]
    Transport(String),
    /// HubSpot answered something that is not a token answer.
    #[error("HubSpot answered {status} with an unexpected body: {body}")]
    Unexpected { status: u16, body: String },
}

/// The milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct IntrospectAnswer {
    #[serde(default)]
    active: bool,
    hub_id: Option<u64>,
    hub_domain: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    expires_in: Option<u64>,
}

/// HubSpot's OAuth endpoints for one API base URL.
#[derive(Clone, Debug)]
pub struct TokenEndpoint {
    http: reqwest::Client,
    base: Url,
    app: OAuthApp,
}

impl TokenEndpoint {
    /// `base_url` is the API's (`https://api.hubapi.com`, or the emulator's).
    pub fn new(base_url: &str, app: OAuthApp, timeout: Duration) -> Result<TokenEndpoint, String> {
        let base = Url::parse(base_url).map_err(|e| format!("base_url is not a URL ({e})"))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("hubsync/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .build()
            .map_err(|e| format!("the HTTP client could not be built ({e})"))?;
        Ok(TokenEndpoint { http, base, app })
    }

    pub fn app(&self) -> &OAuthApp {
        &self.app
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}{path}"));
        url
    }

    /// Exchanges the code HubSpot sent to `redirect_uri` for tokens.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<OAuthTokens, OAuthError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", self.app.client_secret.expose()),
            ("redirect_uri", redirect_uri),
            ("code", code),
        ];
        self.token_request(&form, &[code]).await
    }

    /// Renews the access token with the refresh token.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<OAuthTokens, OAuthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", self.app.client_secret.expose()),
            ("refresh_token", refresh_token.expose()),
        ];
        self.token_request(&form, &[refresh_token.expose()]).await
    }

    /// The portal and the scopes of an access token.
    pub async fn introspect(&self, access_token: &Secret) -> Result<TokenInfo, OAuthError> {
        let form = [
            ("client_id", self.app.client_id.as_str()),
            ("client_secret", self.app.client_secret.expose()),
            ("token_type_hint", "access_token"),
            ("token", access_token.expose()),
        ];
        let (status, body) = self.post_form("/oauth/v3/token/introspect", &form, &[access_token.expose()]).await?;
        if status != 200 {
            return Err(refusal(status, &body, &[access_token.expose()]));
        }
        let answer: IntrospectAnswer = serde_json::from_str(&body)
            .map_err(|_| OAuthError::Unexpected { status, body: excerpt(&body, access_token.expose()) })?;
        Ok(TokenInfo {
            active: answer.active,
            hub_id: answer.hub_id,
            hub_domain: answer.hub_domain,
            scopes: answer.scopes,
            expires_in_secs: answer.expires_in,
        })
    }

    async fn token_request(&self, form: &[(&str, &str)], secrets: &[&str]) -> Result<OAuthTokens, OAuthError> {
        let (status, body) = self.post_form("/oauth/v1/token", form, secrets).await?;
        if status != 200 {
            return Err(refusal(status, &body, secrets));
        }
        let answer: TokenAnswer = serde_json::from_str(&body)
            .map_err(|_| OAuthError::Unexpected { status, body: "(a body that is not a token answer)".into() })?;
        let lifetime_ms = i64::try_from(answer.expires_in.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        Ok(OAuthTokens {
            access_token: Secret::new(answer.access_token),
            refresh_token: Secret::new(answer.refresh_token),
            expires_at_ms: now_ms().saturating_add(lifetime_ms),
            lifetime_secs: answer.expires_in,
        })
    }

    /// POSTs a form, retrying transport failures, 5xx and 429 a few times.
    async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<(u16, String), OAuthError> {
        let url = self.url(path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.http.post(url.clone()).form(form).send().await;
            let outcome = match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.text().await {
                        Ok(body) if status != 429 && status < 500 => return Ok((status, body)),
                        Ok(body) => format!("POST {path} answered {status}: {}", redact(&body, secrets)),
                        Err(e) => format!("POST {path}: the answer was cut off ({e})"),
                    }
                }
                Err(e) => format!("POST {path} could not be sent ({})", redact(&e.to_string(), secrets)),
            };
            if attempt >= TOKEN_ATTEMPTS {
                return Err(OAuthError::Transport(format!("{outcome} (after {attempt} attempts)")));
            }
            tracing::info!(endpoint = %path, attempt, "HubSpot's token endpoint failed; retrying: {outcome}");
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
}

fn redact(text: &str, secrets: &[&str]) -> String {
    secrets.iter().filter(|s| !s.is_empty()).fold(text.to_string(), |t, s| t.replace(s, "***"))
}

/// The error for a refused token request: HubSpot's `{error, error_description, status, message}`.
fn refusal(status: u16, body: &str, secrets: &[&str]) -> OAuthError {
    #[derive(Deserialize)]
    struct OAuthBody {
        error: Option<String>,
        error_description: Option<String>,
        status: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_str::<OAuthBody>(body) {
        Ok(b) if b.error.is_some() || b.status.is_some() || b.message.is_some() => OAuthError::Refused {
            code: b.status.or(b.error).unwrap_or_else(|| format!("HTTP {status}")),
            message: redact(&b.error_description.or(b.message).unwrap_or_default(), secrets),
        },
        _ => match ApiError::parse(body) {
            Some(e) if status < 500 => OAuthError::Refused {
                code: e.category.clone().unwrap_or_else(|| format!("HTTP {status}")),
                message: redact(&e.best_message(), secrets),
            },
            _ => OAuthError::Unexpected { status, body: redact(&excerpt(body, ""), secrets) },
        },
    }
}

/// Where an account's tokens are kept between processes (the credential file).
pub trait TokenStore: Send + Sync {
    /// The tokens stored now, if they are still this login's; another process (a new `hubsync
    /// auth login`, or another run that refreshed first) may have replaced them.
    fn load(&self) -> Option<OAuthTokens>;
    /// Stores the tokens after a refresh.
    fn save(&self, tokens: &OAuthTokens) -> Result<(), String>;
}

/// The OAuth tokens of one account, shared by every request to it.
pub struct OAuthSession {
    account: String,
    endpoint: TokenEndpoint,
    tokens: tokio::sync::Mutex<OAuthTokens>,
    store: Box<dyn TokenStore>,
}

impl fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSession").field("account", &self.account).finish_non_exhaustive()
    }
}

impl OAuthSession {
    pub fn new(
        account: impl Into<String>,
        endpoint: TokenEndpoint,
        tokens: OAuthTokens,
        store: Box<dyn TokenStore>,
    ) -> Self {
        OAuthSession { account: account.into(), endpoint, tokens: tokio::sync::Mutex::new(tokens), store }
    }

    /// The access token to send now, refreshed first when it is about to expire.
    pub async fn bearer(&self) -> Result<Secret, HubSpotError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.needs_refresh(now_ms()) {
            self.refresh_locked(&mut tokens, "it was about to expire").await?;
        }
        Ok(tokens.access_token.clone())
    }

    /// After HubSpot answered 401 `EXPIRED_AUTHENTICATION` to `used`: refreshes, unless another
    /// request has already replaced that token.
    pub async fn expired(&self, used: &Secret) -> Result<(), HubSpotError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.access_token == *used {
            self.refresh_locked(&mut tokens, "HubSpot answered 401 EXPIRED_AUTHENTICATION").await?;
        }
        Ok(())
    }

    /// The portal and scopes of the current access token.
    pub async fn introspect(&self) -> Result<TokenInfo, HubSpotError> {
        let token = self.bearer().await?;
        self.endpoint.introspect(&token).await.map_err(|e| match e {
            OAuthError::Refused { code, message } => {
                self.reauth(format!("introspection was refused ({code}: {message})"))
            }
            other => self.transport("POST /oauth/v3/token/introspect", other),
        })
    }

    async fn refresh_locked(&self, tokens: &mut OAuthTokens, why: &str) -> Result<(), HubSpotError> {
        // Another process may have refreshed, or the user signed in again: use its tokens.
        if let Some(stored) = self.store.load().filter(|t| t != &*tokens) {
            let usable = stored.access_token != tokens.access_token && !stored.needs_refresh(now_ms());
            *tokens = stored;
            if usable {
                tracing::info!(account = %self.account, "Using the OAuth tokens stored by another process.");
                return Ok(());
            }
        }
        let fresh = self.endpoint.refresh(&tokens.refresh_token).await.map_err(|e| match e {
            OAuthError::Refused { code, message } => {
                self.reauth(format!("HubSpot refused its refresh token ({code}: {message})"))
            }
            other => self.transport("POST /oauth/v1/token", other),
        })?;
        *tokens = fresh;
        tracing::info!(account = %self.account, "Refreshed the OAuth access token: {why}.");
        if let Err(e) = self.store.save(tokens) {
            tracing::warn!(account = %self.account, "The refreshed OAuth tokens could not be stored: {e}");
        }
        Ok(())
    }

    fn reauth(&self, detail: String) -> HubSpotError {
        HubSpotError::ReauthRequired { account: self.account.clone(), detail }
    }

    fn transport(&self, endpoint: &str, e: OAuthError) -> HubSpotError {
        HubSpotError::Transport { account: self.account.clone(), endpoint: endpoint.to_string(), detail: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(expires_at_ms: i64, lifetime_secs: u64) -> OAuthTokens {
        OAuthTokens { access_token: Secret::new("a"), refresh_token: Secret::new("r"), expires_at_ms, lifetime_secs }
    }

    #[test]
    fn refreshes_five_minutes_early_or_a_quarter_of_a_short_lifetime() {
        let t = tokens(1_800_000, 1800);
        assert!(!t.needs_refresh(1_800_000 - 300_001));
        assert!(t.needs_refresh(1_800_000 - 300_000));
        let short = tokens(8_000, 8);
        assert!(!short.needs_refresh(5_999));
        assert!(short.needs_refresh(6_000));
    }

    #[test]
    fn refusals_read_hubspots_oauth_body_without_secrets() {
        let body = r#"{"error":"invalid_grant","error_description":"refresh token r-123 is invalid, expired or revoked","status":"BAD_REFRESH_TOKEN","message":"refresh token is invalid, expired or revoked"}"#;
        match refusal(400, body, &["r-123"]) {
            OAuthError::Refused { code, message } => {
                assert_eq!(code, "BAD_REFRESH_TOKEN");
                assert_eq!(message, "refresh token *** is invalid, expired or revoked");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(refusal(502, "<html>", &[]), OAuthError::Unexpected { status: 502, .. }));
    }
}
