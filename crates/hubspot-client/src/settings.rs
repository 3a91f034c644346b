//! The client's settings: what one HubSpot account allows and how patient the client is.
//!
//! These are runtime settings built from the user's config by the lead's `config` module; every
//! default lives here, in one place, and every name carries its unit.

use std::sync::Arc;
use std::time::Duration;

use hubspot_model::Secret;

use super::errors::HubSpotError;
use super::oauth::OAuthSession;

/// HubSpot's public API host.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
/// The date-based API version the client builds its paths with
/// (https://developers.hubspot.com/docs/developer-tooling/platform/versioning).
pub const DEFAULT_API_VERSION: &str = "2026-03";
/// The burst limit of the lowest tier (Free & Starter private apps), per 10 seconds.
pub const DEFAULT_MAX_REQUESTS_PER_10S: u32 = 100;
/// The daily limit of the lowest tier, per account.
pub const DEFAULT_DAILY_LIMIT: u64 = 250_000;
/// Search requests per second; HubSpot allows 5 per account, one is left for other apps.
pub const DEFAULT_SEARCH_REQUESTS_PER_SEC: u32 = 4;
/// Per-request timeout.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Retries after the first attempt of one request.
pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 6;
/// Requests to one account in flight at once, at most: see `ClientSettings::max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;
/// Record ids per list membership request. HubSpot documents no maximum for lists v3; the
/// legacy v1 endpoint allowed 500 (https://developers.hubspot.com/docs/api/crm/lists), so the
/// client stays at that.
pub const DEFAULT_LIST_BATCH_SIZE: usize = 500;

/// Settings for one HubSpot account's client and rate budget.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The account's name in the config, used in logs and error messages.
    pub account: String,
    /// API host, `https://api.hubapi.com` by default; tests point it at the emulator.
    pub base_url: String,
    /// Date-based API version used in every path, e.g. `2026-03`.
    pub api_version: String,
    /// Private app / service key token, sent as `Authorization: Bearer`; unused with `oauth`.
    pub token: Secret,
    /// An OAuth login, whose access tokens are sent instead of `token` and refreshed as needed.
    pub oauth: Option<Arc<OAuthSession>>,
    /// Requests allowed per rolling 10 seconds (100 Free/Starter, 190 Pro/Enterprise, 250 with
    /// the API limit increase). Lowered at run time when HubSpot's headers report less.
    pub max_requests_per_10s: u32,
    /// Requests allowed per day for the account (shared by all apps in the portal).
    pub daily_limit: u64,
    /// CRM search requests per second (HubSpot allows 5 per account).
    pub search_requests_per_sec: u32,
    /// Timeout of one HTTP request, from sending to the end of the answer.
    pub timeout_secs: u64,
    /// How many times one request is retried after its first attempt.
    pub retry_max_attempts: u32,
    /// Record ids per list membership add/remove request.
    pub list_batch_size: usize,
    /// Requests to the account in flight at once, at most, over every sync and client that
    /// shares its `RateBudget` (the budget holds the cap, from the settings it was built with).
    /// Every attempt of every request (record, association and list batches, searches, reads)
    /// holds one slot from just before it is sent until its answer is read. The rate budget
    /// stays the throttle; this cap only bounds the connections and what one 429 can catch in
    /// flight. Sustaining R requests per second at L seconds per answer takes R × L in flight
    /// (Little's law): HubSpot's Pro/Enterprise limit of 190 per 10 s is 19/s, which at 1 s
    /// answers needs 19. The default, 32, keeps that limit up to 1.6 s answers, and the
    /// 250-per-10-s limit increase up to 1.28 s.
    pub max_in_flight: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            account: "default".to_string(),
            base_url: DEFAULT_BASE_URL.to_string(),
            api_version: DEFAULT_API_VERSION.to_string(),
            token: Secret::new(""),
            oauth: None,
            max_requests_per_10s: DEFAULT_MAX_REQUESTS_PER_10S,
            daily_limit: DEFAULT_DAILY_LIMIT,
            search_requests_per_sec: DEFAULT_SEARCH_REQUESTS_PER_SEC,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            retry_max_attempts: DEFAULT_RETRY_MAX_ATTEMPTS,
            list_batch_size: DEFAULT_LIST_BATCH_SIZE,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl ClientSettings {
    /// Default settings for `account` with `token`.
    pub fn new(account: impl Into<String>, token: Secret) -> Self {
        ClientSettings { account: account.into(), token, ..ClientSettings::default() }
    }

    /// The per-request timeout as a `Duration`.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Reports every setting that cannot work, all at once.
    pub fn validate(&self) -> Result<(), HubSpotError> {
        let mut problems = Vec::new();
        if self.token.is_empty() && self.oauth.is_none() {
            problems.push("the token is empty: set the private app or service key token".to_string());
        }
        match url::Url::parse(&self.base_url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(_) | Err(_) => problems
                .push(format!("base_url {:?} is not an http(s) URL (default {DEFAULT_BASE_URL})", self.base_url)),
        }
        let version_ok = !self.api_version.is_empty()
            && self.api_version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !version_ok {
            problems.push(format!("api_version {:?} is not a version like {DEFAULT_API_VERSION}", self.api_version));
        }
        if self.max_requests_per_10s == 0 {
            problems.push("max_requests_per_10s must be at least 1".to_string());
        }
        if self.daily_limit == 0 {
            problems.push("daily_limit must be at least 1".to_string());
        }
        if self.search_requests_per_sec == 0 {
            problems.push("search_requests_per_sec must be at least 1".to_string());
        }
        if self.timeout_secs == 0 {
            problems.push("timeout_secs must be at least 1".to_string());
        }
        if self.list_batch_size == 0 {
            problems.push("list_batch_size must be at least 1".to_string());
        }
        if self.max_in_flight == 0 {
            problems.push(format!("max_in_flight must be at least 1 (default {DEFAULT_MAX_IN_FLIGHT})"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(HubSpotError::InvalidSettings { account: self.account.clone(), problems: problems.join("; ") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_lowest_tier() {
        let s = ClientSettings::new("main", Secret::new("pat-na1-x"));
        assert_eq!(s.base_url, "https://api.hubapi.com");
        assert_eq!(s.api_version, "2026-03");
        assert_eq!(s.max_requests_per_10s, 100);
        assert_eq!(s.daily_limit, 250_000);
        assert_eq!(s.search_requests_per_sec, 4);
        assert_eq!(s.timeout(), Duration::from_secs(30));
        assert_eq!(s.retry_max_attempts, 6);
        assert_eq!(s.list_batch_size, 500);
        assert_eq!(s.max_in_flight, 32);
        // 190 per 10 s at 1 s per answer needs 19 in flight.
        assert!(s.max_in_flight >= 19);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn validation_reports_every_problem_without_the_token() {
        let s = ClientSettings {
            token: Secret::new(""),
            base_url: "ftp://x".into(),
            max_requests_per_10s: 0,
            max_in_flight: 0,
            ..ClientSettings::default()
        };
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains("max_in_flight"), "{msg}");
        assert!(msg.contains("token is empty"), "{msg}");
        assert!(msg.contains("base_url"), "{msg}");
        assert!(msg.contains("max_requests_per_10s"), "{msg}");

        let s = ClientSettings {
            token: Secret::new("pat-na1-secret"),
            api_version: "bad/version".into(),
            ..ClientSettings::default()
        };
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains("api_version"), "{msg}");
        assert!(!msg.contains("pat-na1-secret"));
    }
}
