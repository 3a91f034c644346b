//! The HubSpot client: the one module of this crate that does I/O. `transport.rs` sends one
//! request; `batches.rs` chunks batch endpoints; `objects.rs`, `associations.rs`, `lists.rs`,
//! `properties.rs` (property and group creation) and `archive.rs` (removals) are the endpoints;
//! this file holds the client itself and its metadata calls.
//!
//! Every request goes through `execute`: take a `SendPermit` from the account's `RateBudget`
//! (an in-flight slot and room in every bucket), send, let the permit learn from the answer and
//! its rate-limit headers, count the attempt, release the slot, and carry out the `RetryAction`.
//! Every method takes `&self` and may be called from many tasks at once on clones of one client;
//! the account's budget and in-flight cap are what they share. Batch endpoints go through `run_batches`, which chunks, maps answers back to
//! inputs with `responses.rs`, and bisects whole-batch failures down to the bad input.
//!
//! A batch call returns `Err` only when nothing of it has been acknowledged yet. Once some input
//! has an outcome from HubSpot, a later failure turns the remaining inputs into `Rejected`
//! outcomes carrying the error's code, so acknowledged writes (and the ids of created records)
//! are never lost; the next call meets the same failure at once and returns it as `Err`.

mod archive;
mod associations;
mod batches;
mod lists;
mod objects;
mod properties;
mod records;
mod transport;

pub use archive::LabelRemoval;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::Method;

use crate::budget::RateBudget;
use crate::errors::HubSpotError;
use crate::oauth::{OAuthSession, TokenInfo};
use crate::requests::Paths;
use crate::responses::{self, WriteOp};
use crate::retry::RetryPolicy;
use crate::settings::ClientSettings;
use crate::stats::{ClientStats, EndpointKind, StatsCounters};
use crate::types::{PropertyInfo, SchemaInfo};

use transport::{bearer_header, Call};
/// Longest time to wait for a connection, whatever `timeout_secs` says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one HubSpot account. Cheap to clone; clones share counters and the budget.
/// `with_run_stats` makes a clone that also counts its requests on its own, for one run.
#[derive(Clone, Debug)]
pub struct HubSpotClient {
    pub(super) inner: Arc<Inner>,
    /// The counters of the run this handle belongs to, if any (shared by its clones).
    pub(super) run: Option<Arc<StatsCounters>>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) settings: ClientSettings,
    pub(super) http: reqwest::Client,
    pub(super) paths: Paths,
    pub(super) budget: Arc<RateBudget>,
    pub(super) policy: RetryPolicy,
    pub(super) stats: StatsCounters,
    pub(super) auth: Auth,
}

/// Where the `Authorization` header comes from.
#[derive(Debug)]
pub(super) enum Auth {
    /// A private app or service key token: one header for the client's life.
    Static(HeaderValue),
    /// An OAuth login, whose access token changes when it is refreshed.
    OAuth(Arc<OAuthSession>),
}

impl HubSpotClient {
    pub fn new(settings: ClientSettings, budget: Arc<RateBudget>) -> Result<Self, HubSpotError> {
        settings.validate()?;
        let invalid =
            |problem: String| HubSpotError::InvalidSettings { account: settings.account.clone(), problems: problem };
        let paths = Paths::new(&settings.base_url, &settings.api_version)
            .map_err(|e| invalid(format!("base_url is not a URL ({e})")))?;
        let auth = match &settings.oauth {
            Some(session) => Auth::OAuth(session.clone()),
            None => Auth::Static(
                bearer_header(&settings.token)
                    .ok_or_else(|| invalid("the token has characters that cannot go in an HTTP header".to_string()))?,
            ),
        };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("hubsync/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout())
            .connect_timeout(settings.timeout().min(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| invalid(format!("the HTTP client could not be built ({e})")))?;
        if budget.account() != settings.account {
            tracing::warn!(
                account = %settings.account,
                budget_account = %budget.account(),
                "The client was given the rate budget of another account."
            );
        }
        if budget.max_in_flight() != settings.max_in_flight {
            tracing::warn!(
                account = %settings.account,
                max_in_flight = settings.max_in_flight,
                budget_max_in_flight = budget.max_in_flight(),
                "The client's max_in_flight differs from its rate budget's; the budget's cap applies."
            );
        }
        let policy = RetryPolicy::new(settings.retry_max_attempts);
        Ok(HubSpotClient {
            inner: Arc::new(Inner { settings, http, paths, budget, policy, stats: StatsCounters::default(), auth }),
            run: None,
        })
    }

    /// A clone that counts every attempt it (or a clone of it) makes into counters of its own
    /// as well as the client's: for one run's exact request counts while other runs use the
    /// same client. Its `stats()` are those of the run alone; `client_stats()` still gives the
    /// client's. Calling it on a run's handle starts a new, separate count.
    pub fn with_run_stats(&self) -> HubSpotClient {
        HubSpotClient { inner: self.inner.clone(), run: Some(Arc::new(StatsCounters::default())) }
    }

    /// Requests made so far, by endpoint kind and answer class; retries by reason; 429s met.
    /// Every attempt counts, retries and 429s included. On a handle from `with_run_stats`, the
    /// run's requests only; otherwise those of every clone of the client.
    pub fn stats(&self) -> ClientStats {
        match &self.run {
            Some(run) => run.snapshot(),
            None => self.inner.stats.snapshot(),
        }
    }

    /// Requests made so far through every clone of the client, whatever the run.
    pub fn client_stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// Counts into the client's counters and, on a run's handle, the run's.
    pub(super) fn count(&self, add: impl Fn(&StatsCounters)) {
        add(&self.inner.stats);
        if let Some(run) = &self.run {
            add(run);
        }
    }

    /// The account's shared rate budget.
    pub fn budget(&self) -> &Arc<RateBudget> {
        &self.inner.budget
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.inner.settings
    }

    fn account(&self) -> &str {
        &self.inner.settings.account
    }

    // ----- metadata -----

    /// The object type's properties (not archived).
    pub async fn list_properties(&self, object_type: &str) -> Result<Vec<PropertyInfo>, HubSpotError> {
        let call = Call::new(EndpointKind::Properties, Method::GET, self.inner.paths.properties(object_type));
        let reply = self.execute_or_error(&call).await?;
        if reply.status != 200 {
            return Err(self.answer_error(&call, &reply));
        }
        responses::parse_properties(&reply.body).map_err(|detail| self.unreadable(&call, &reply, detail))
    }

    /// The portal's custom object schemas. Uses the dated path and falls back on
    /// `/crm-object-schemas/v3/schemas` when the dated one is not served.
    pub async fn list_schemas(&self) -> Result<Vec<SchemaInfo>, HubSpotError> {
        let mut call = Call::new(EndpointKind::Schemas, Method::GET, self.inner.paths.schemas());
        let mut reply = self.execute_or_error(&call).await?;
        if reply.status == 404 {
            tracing::debug!(account = %self.account(), "The dated schemas path is not served; using the v3 path.");
            call = Call::new(EndpointKind::Schemas, Method::GET, self.inner.paths.schemas_legacy());
            reply = self.execute_or_error(&call).await?;
        }
        if reply.status != 200 {
            return Err(self.answer_error(&call, &reply));
        }
        responses::parse_schemas(&reply.body).map_err(|detail| self.unreadable(&call, &reply, detail))
    }

    /// The portal and scopes of the account's OAuth token; `None` for a static token, whose
    /// scopes HubSpot reveals only by refusing a request.
    pub async fn oauth_token_info(&self) -> Option<Result<TokenInfo, HubSpotError>> {
        match &self.inner.auth {
            Auth::Static(_) => None,
            Auth::OAuth(session) => Some(session.introspect().await),
        }
    }

    /// Checks the token may write `object_type` records with `op`, without writing anything:
    /// sends the batch endpoint an empty batch, which HubSpot refuses with 403
    /// `MISSING_SCOPES` before it reads the body. Any other answer means the scope is there.
    pub async fn probe_write_scope(&self, object_type: &str, op: WriteOp) -> Result<(), HubSpotError> {
        let kind = match op {
            WriteOp::Upsert => EndpointKind::Upsert,
            WriteOp::Update => EndpointKind::Update,
            WriteOp::Create => EndpointKind::Create,
        };
        let call = Call::new(kind, Method::POST, self.inner.paths.object_batch(object_type, op.path()))
            .json(&serde_json::json!({ "inputs": [] }));
        self.execute_or_error(&call).await.map(|_| ())
    }
}
