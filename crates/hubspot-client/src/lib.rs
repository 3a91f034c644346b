//! The HubSpot client: dated API paths, one shared rate budget per account, retries decided by
//! a type, per-record outcomes for batch writes, and HubSpot's error bodies read leniently.
//!
//! The sync runner decides what to send; this module decides how: batch limits, the rate
//! budget, retries, bisecting whole-batch failures, and mapping errors. File roles:
//! - `settings.rs`: `ClientSettings` and every default.
//! - `budget.rs`: `RateBudget`, the account's shared 10-second, daily and search budget.
//! - `retry.rs`: `RetryAction`, the pure retry decision.
//! - `errors.rs`: `HubSpotError` and the reading of HubSpot's error bodies.
//! - `requests.rs`: pure request building (paths, bodies, chunks, dedupe).
//! - `responses.rs`: pure answer reading (207 mapping, bisect decisions, metadata).
//! - `stats.rs`: request counters.
//! - `types.rs`: the data the client takes and returns.
//! - `oauth.rs`: OAuth token exchange, refresh and introspection, and `OAuthSession`.
//! - `client.rs`: `HubSpotClient`, the only other I/O.

mod budget;
mod client;
mod errors;
pub mod metrics;
mod oauth;
mod requests;
mod responses;
mod retry;
mod settings;
mod stats;
mod types;

pub use budget::{
    AccountPause, BudgetSnapshot, DailyLimitReached, RateBudget, RateLimitHeaders, RequestClass, SendPermit,
};
pub use client::{HubSpotClient, LabelRemoval};
pub use errors::{ApiError, HubSpotError};
pub use oauth::{now_ms, OAuthApp, OAuthError, OAuthSession, OAuthTokens, TokenEndpoint, TokenInfo, TokenStore};
pub use requests::{ASSOCIATION_BATCH_LIMIT, OBJECT_BATCH_LIMIT, SEARCH_VALUES_LIMIT};
pub use responses::WriteOp;
pub use retry::{DontRetry, RetryAction, RetryPolicy, RetryReason};
pub use settings::{
    ClientSettings, DEFAULT_API_VERSION, DEFAULT_BASE_URL, DEFAULT_DAILY_LIMIT, DEFAULT_LIST_BATCH_SIZE,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_REQUESTS_PER_10S, DEFAULT_RETRY_MAX_ATTEMPTS, DEFAULT_SEARCH_REQUESTS_PER_SEC,
    DEFAULT_TIMEOUT_SECS,
};
pub use stats::{ClientStats, EndpointKind, StatusClass};
pub use types::{
    outcome_codes, AssocOutcome, AssociationInput, AssociationLabel, ListInfo, MembershipChange, NewProperty,
    NewPropertyGroup, PropertyInfo, SchemaInfo, WriteInput, WriteOutcome,
};
