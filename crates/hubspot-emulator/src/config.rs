//! What a user or a test sets about an emulator run: inert, documented data, and the command
//! line (`hubsync emulator ...`) that fills it.

use std::fmt;

use hubspot_model::Secret;

/// The burst limit the emulator enforces unless told otherwise: 100 requests per app per
/// rolling 10 seconds, what a Free or Starter portal gives a private app (HubSpot docs: usage guidelines; sources in docs/emulator.md). Real portals always have one, so the emulator does too; tests raise it or turn it
/// off (`max_requests_per_10s: None`, `--max-requests-per-10s 0`).
pub const DEFAULT_MAX_REQUESTS_PER_10S: u32 = 100;

/// How a run of the emulator behaves. `Default` is what tests use: a random port, HubSpot's
/// Free/Starter burst limit of 100 requests per 10 s ([`DEFAULT_MAX_REQUESTS_PER_10S`]), no
/// daily limit, HubSpot's search limit of 5 requests/second, no index lag, shuffled batch
/// results, no faults, and any bearer token accepted with every scope.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Port to listen on, always on 127.0.0.1. `0` picks a free port.
    pub port: u16,
    /// The HubSpot account id (`portalId`/`hub_id`) the emulator pretends to be.
    pub portal_id: u64,
    /// Requests allowed per app in a rolling 10-second window (`TEN_SECONDLY_ROLLING`),
    /// reported in the `X-HubSpot-RateLimit-*` headers of every non-search answer. `None`
    /// turns the burst limit and those headers off. HubSpot: 100 (Free/Starter, the
    /// default), 190 (Pro/Enterprise), 250 (with the API limit increase), 110 (OAuth apps).
    pub max_requests_per_10s: Option<u32>,
    /// Requests allowed per account per day (UTC), shared by all non-OAuth apps. `None` = off.
    pub daily_limit: Option<u64>,
    /// CRM search requests allowed per second per account. HubSpot: 5. `None` = off.
    pub search_requests_per_sec: Option<u32>,
    /// How long a written record takes to show up (or change) in search results, in ms.
    pub search_index_lag_ms: u64,
    /// Most filter groups a search may have (HubSpot: 5).
    pub search_max_filter_groups: usize,
    /// Most filters in one search filter group (HubSpot: 6).
    pub search_max_filters_per_group: usize,
    /// Most filters in one search over all groups (HubSpot: 18).
    pub search_max_filters_total: usize,
    /// Return batch results in a random order, as HubSpot does.
    pub shuffle_results: bool,
    /// Faults to inject; see [`FaultConfig`].
    pub faults: FaultConfig,
    /// Private-app / service-key tokens and their scopes. With no static tokens and no OAuth
    /// clients, any bearer token is accepted with every scope.
    pub static_tokens: Vec<StaticToken>,
    /// OAuth apps that may use `/oauth/authorize` and `/oauth/v1/token`.
    pub oauth_clients: Vec<OAuthClient>,
    /// Lifetime of OAuth access tokens in seconds (HubSpot: 1800).
    pub access_token_ttl_secs: u64,
    /// Most record ids one list membership add/remove request may carry. HubSpot does not
    /// document a number (the legacy v1 API allowed 500), so the emulator refuses more than
    /// 500 by default, to keep clients on the cautious side.
    pub list_membership_batch_limit: usize,
    /// Most journal entries kept; the oldest are dropped past it.
    pub journal_capacity: usize,
    /// Keep each request's body in the journal (for tests that check payloads).
    pub record_bodies: bool,
    /// Seed of the random generator behind result shuffling and fault injection.
    pub seed: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            port: 0,
            portal_id: 12_345_678,
            max_requests_per_10s: Some(DEFAULT_MAX_REQUESTS_PER_10S),
            daily_limit: None,
            search_requests_per_sec: Some(5),
            search_index_lag_ms: 0,
            search_max_filter_groups: 5,
            search_max_filters_per_group: 6,
            search_max_filters_total: 18,
            shuffle_results: true,
            faults: FaultConfig::default(),
            static_tokens: Vec::new(),
            oauth_clients: Vec::new(),
            access_token_ttl_secs: 1800,
            list_membership_batch_limit: 500,
            journal_capacity: 1_000_000,
            record_bodies: false,
            seed: 0x5eed,
        }
    }
}

/// Faults injected into answers. Shares are between 0 and 1. All but the two after-write
/// faults are drawn once per request, before the request touches any state, so such a faulted
/// write is never applied; the after-write faults are drawn after a create or upsert was
/// applied, so the portal holds what the failed answer does not confirm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Share of requests answered 500, 502, 503 or 504.
    pub error_rate: f64,
    /// Latency added to every answer, in ms.
    pub latency_ms: u64,
    /// Share of requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// Share of requests answered `423 Locked`.
    pub locked_rate: f64,
    /// Share of requests answered `477 Migration in Progress` with `Retry-After`.
    pub migration_rate: f64,
    /// The next N requests get a `TEN_SECONDLY_ROLLING` 429.
    pub burst_429: u32,
    /// For this many ms from when the faults are set (`Emulator::set_faults`, or the start),
    /// every request but searches is answered with a `TEN_SECONDLY_ROLLING` 429 when its
    /// answer is due (after `latency_ms`), before it touches any state: as when other apps have
    /// filled the portal's window. Unlike `burst_429`, requests already in flight when it
    /// starts get one too. Tests only (no command-line option).
    pub burst_429_ms: u64,
    /// Share of create and upsert requests (single create, batch create, batch upsert) that
    /// are applied and then answered 502 or 504, as when HubSpot's gateway loses the answer
    /// of a write that went through. Drawn after the write, only for successful ones.
    pub error_after_write_rate: f64,
    /// Share of create and upsert requests that are applied and then get no answer: the
    /// connection is closed after the write.
    pub drop_after_write_rate: f64,
}

/// A private-app or service-key token and the scopes granted to it.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticToken {
    /// The bearer token, e.g. `pat-na1-...`.
    pub token: String,
    /// Granted scopes; `*` grants every scope, an empty list none.
    pub scopes: Vec<String>,
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken").field("token", &"***").field("scopes", &self.scopes).finish()
    }
}

/// An OAuth app known to the emulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    /// Checked on token exchange and introspection.
    pub client_secret: Secret,
    /// Scopes the app may be granted; empty means any scope it asks for.
    pub scopes: Vec<String>,
}

/// `hubsync emulator`: a local HubSpot API for tests and rehearsals.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    /// Port to listen on (127.0.0.1 only); 0 picks a free port.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// HubSpot account id the emulator answers as (portalId / hub_id).
    #[arg(long, default_value_t = 12_345_678)]
    pub portal_id: u64,
    /// Requests allowed per app in a rolling 10-second window; 0 = no burst limit (and no
    /// rate-limit headers). HubSpot: 100 (Free/Starter), 190 (Pro/Enterprise), 250 (limit
    /// increase), 110 (OAuth apps).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_REQUESTS_PER_10S)]
    pub max_requests_per_10s: u32,
    /// Requests allowed per account per day (resets at midnight UTC); unset = no daily limit.
    #[arg(long, value_name = "N")]
    pub daily_limit: Option<u64>,
    /// CRM search requests allowed per second per account; 0 = no limit.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub search_requests_per_sec: u32,
    /// Delay before a written record is visible to (or changed in) search, in ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub search_index_lag_ms: u64,
    /// Most filter groups in one search request.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub search_max_filter_groups: usize,
    /// Most filters in one search filter group.
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub search_max_filters_per_group: usize,
    /// Most filters in one search request, over all groups.
    #[arg(long, value_name = "N", default_value_t = 18)]
    pub search_max_filters_total: usize,
    /// Return batch results in request order instead of HubSpot's random order.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Share (0..1) of requests answered 500/502/503/504 before touching any state.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Latency added to every answer, in ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0..1) of requests whose connection is closed without an answer.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Share (0..1) of requests answered 423 Locked.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub locked_rate: f64,
    /// Share (0..1) of requests answered 477 Migration in Progress with Retry-After.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub migration_rate: f64,
    /// Answer the first N requests with a TEN_SECONDLY_ROLLING 429.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub burst_429: u32,
    /// Share (0..1) of create/upsert requests that are applied and then answered 502 or 504.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub error_after_write_rate: f64,
    /// Share (0..1) of create/upsert requests that are applied and then get no answer (the
    /// connection is closed).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub drop_after_write_rate: f64,
    /// A private-app / service-key token, optionally with its scopes (comma-separated);
    /// without scopes it gets every scope. Repeatable. With no --token and no
    /// --oauth-client, any bearer token is accepted with every scope.
    #[arg(long = "token", value_name = "TOKEN[:SCOPE,...]", value_parser = parse_static_token)]
    pub tokens: Vec<StaticToken>,
    /// An OAuth app: client id, client secret, and optionally the scopes it may be granted
    /// (comma-separated). Repeatable.
    #[arg(long = "oauth-client", value_name = "ID:SECRET[:SCOPE,...]", value_parser = parse_oauth_client)]
    pub oauth_clients: Vec<OAuthClient>,
    /// Lifetime of OAuth access tokens, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub access_token_ttl_secs: u64,
    /// Most record ids one list membership add/remove request may carry (HubSpot does not
    /// document its limit).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub list_membership_batch_limit: usize,
    /// Most request journal entries kept in memory.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub journal_capacity: usize,
    /// Seed for result shuffling and fault injection, for reproducible runs.
    #[arg(long, value_name = "N", default_value_t = 0x5eed)]
    pub seed: u64,
}

impl From<EmulatorArgs> for EmulatorConfig {
    fn from(args: EmulatorArgs) -> Self {
        EmulatorConfig {
            port: args.port,
            portal_id: args.portal_id,
            max_requests_per_10s: Some(args.max_requests_per_10s).filter(|n| *n > 0),
            daily_limit: args.daily_limit,
            search_requests_per_sec: Some(args.search_requests_per_sec).filter(|n| *n > 0),
            search_index_lag_ms: args.search_index_lag_ms,
            search_max_filter_groups: args.search_max_filter_groups,
            search_max_filters_per_group: args.search_max_filters_per_group,
            search_max_filters_total: args.search_max_filters_total,
            shuffle_results: !args.no_shuffle,
            faults: FaultConfig {
                error_rate: args.error_rate,
                latency_ms: args.latency_ms,
                drop_rate: args.drop_rate,
                locked_rate: args.locked_rate,
                migration_rate: args.migration_rate,
                burst_429: args.burst_429,
                error_after_write_rate: args.error_after_write_rate,
                drop_after_write_rate: args.drop_after_write_rate,
                ..FaultConfig::default()
            },
            static_tokens: args.tokens,
            oauth_clients: args.oauth_clients,
            access_token_ttl_secs: args.access_token_ttl_secs,
            list_membership_batch_limit: args.list_membership_batch_limit,
            journal_capacity: args.journal_capacity,
            record_bodies: false,
            seed: args.seed,
        }
    }
}

fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Parses `TOKEN[:scope,scope]`.
pub fn parse_static_token(s: &str) -> Result<StaticToken, String> {
    let (token, scopes) = match s.split_once(':') {
        Some((token, scopes)) => (token, split_scopes(scopes)),
        None => (s, Vec::new()),
    };
    if token.trim().is_empty() {
        return Err("the token is empty; write --token TOKEN[:scope,scope]".into());
    }
    let scopes = if scopes.is_empty() { vec!["*".to_string()] } else { scopes };
    Ok(StaticToken { token: token.trim().to_string(), scopes })
}

/// Parses `ID:SECRET[:scope,scope]`.
pub fn parse_oauth_client(s: &str) -> Result<OAuthClient, String> {
    let mut parts = s.splitn(3, ':');
    let id = parts.next().unwrap_or_default().trim();
    let secret = parts.next().unwrap_or_default().trim();
    if id.is_empty() || secret.is_empty() {
        return Err("write --oauth-client CLIENT_ID:CLIENT_SECRET[:scope,scope]".into());
    }
    Ok(OAuthClient {
        client_id: id.to_string(),
        client_secret: Secret::new(secret),
        scopes: parts.next().map(split_scopes).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_with_and_without_scopes() {
        let t = parse_static_token("pat-na1-abc:crm.objects.contacts.read, crm.lists.read").unwrap();
        assert_eq!(t.token, "pat-na1-abc");
        assert_eq!(t.scopes, vec!["crm.objects.contacts.read", "crm.lists.read"]);
        assert_eq!(parse_static_token("pat-na1-abc").unwrap().scopes, vec!["*"]);
        assert!(parse_static_token(":x").is_err());
        assert!(!format!("{t:?}").contains("pat-na1"));
    }

    #[test]
    fn parses_oauth_clients() {
        let c = parse_oauth_client("id1:s3cret:oauth,crm.lists.write").unwrap();
        assert_eq!(c.client_id, "id1");
        assert_eq!(c.client_secret.expose(), "s3cret");
        assert_eq!(c.scopes, vec!["oauth", "crm.lists.write"]);
        assert!(parse_oauth_client("id-only").is_err());
    }
}
