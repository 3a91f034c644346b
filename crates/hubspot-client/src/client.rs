//! The HubSpot client: the one file of this module that does I/O.
//!
//! Every request goes through `execute`: take a slot from the account's `RateBudget`, send,
//! let the budget learn from the rate-limit headers, count the answer, and carry out the
//! `RetryAction`. Batch endpoints go through `run_batches`, which chunks, maps answers back to
//! inputs with `responses.rs`, and bisects whole-batch failures down to the bad input.
//!
//! A batch call returns `Err` only when nothing of it has been acknowledged yet. Once some input
//! has an outcome from HubSpot, a later failure turns the remaining inputs into `Rejected`
//! outcomes carrying the error's code, so acknowledged writes (and the ids of created records)
//! are never lost; the next call meets the same failure at once and returns it as `Err`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::budget::{DailyLimitReached, RateBudget, RateLimitHeaders, RequestClass};
use super::errors::{excerpt, ApiError, HubSpotError};
use super::oauth::{OAuthSession, TokenInfo};
use super::requests::{self, Paths};
use super::responses::{self, Verdict, WriteOp};
use super::retry::{parse_retry_after, Attempt, DontRetry, Observation, RetryAction, RetryPolicy, TransportFailure};
use super::settings::ClientSettings;
use super::stats::{ClientStats, EndpointKind, StatsCounters, StatusClass};
use super::types::{
    outcome_codes, AssocOutcome, AssociationInput, AssociationLabel, ListInfo, MembershipChange, PropertyInfo,
    SchemaInfo, WriteInput, WriteOutcome,
};

use crate::metrics::{HubSpotRequest, RequestRetried};
use hubspot_model::Secret;

/// Longest time to wait for a connection, whatever `timeout_secs` says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one HubSpot account. Cheap to clone; clones share counters and the budget.
#[derive(Clone, Debug)]
pub struct HubSpotClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ClientSettings,
    http: reqwest::Client,
    paths: Paths,
    budget: Arc<RateBudget>,
    policy: RetryPolicy,
    stats: StatsCounters,
    auth: Auth,
}

/// Where the `Authorization` header comes from.
#[derive(Debug)]
enum Auth {
    /// A private app or service key token: one header for the client's life.
    Static(HeaderValue),
    /// An OAuth login, whose access token changes when it is refreshed.
    OAuth(Arc<OAuthSession>),
}

/// One HTTP request, ready to be sent any number of times.
#[derive(Debug, Clone)]
struct Call {
    kind: EndpointKind,
    method: Method,
    url: Url,
    body: Option<Bytes>,
    /// False when sending twice may do the work twice (creates).
    idempotent: bool,
    class: RequestClass,
}

impl Call {
    fn new(kind: EndpointKind, method: Method, url: Url) -> Call {
        Call { kind, method, url, body: None, idempotent: true, class: RequestClass::Standard }
    }

    fn json(mut self, body: &Value) -> Call {
        self.body = Some(Bytes::from(body.to_string()));
        self
    }

    fn not_idempotent(mut self) -> Call {
        self.idempotent = false;
        self
    }

    fn search(mut self) -> Call {
        self.class = RequestClass::Search;
        self
    }

    /// `METHOD /path` for logs and errors (no host, no query, never a token).
    fn describe(&self) -> String {
        format!("{} {}", self.method, self.url.path())
    }
}

/// A complete answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
}

/// One attempt's raw result.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    retry_after: Option<Duration>,
    limits: RateLimitHeaders,
    body: String,
}

/// Why `execute` gave up.
#[derive(Debug)]
enum CallError {
    Hub(HubSpotError),
    /// A non-idempotent request may have been applied; it was not sent again.
    DeliveryUncertain {
        detail: String,
    },
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
        let policy = RetryPolicy::new(settings.retry_max_attempts);
        Ok(HubSpotClient {
            inner: Arc::new(Inner { settings, http, paths, budget, policy, stats: StatsCounters::default(), auth }),
        })
    }

    /// Requests made so far, by endpoint kind and answer class; retries by reason; 429s met.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
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

    // ----- record writes -----

    /// Creates or updates records by a unique property (`email` for contacts, or any property
    /// with `hasUniqueValue`). `WriteInput.id` is the property's value. One outcome per input,
    /// in input order.
    pub async fn batch_upsert(
        &self,
        object_type: &str,
        id_property: &str,
        inputs: Vec<WriteInput>,
    ) -> Result<Vec<WriteOutcome>, HubSpotError> {
        self.batch_write(WriteOp::Upsert, object_type, Some(id_property), inputs).await
    }

    /// Updates records by HubSpot record id (`WriteInput.id`). One outcome per input, in order.
    pub async fn batch_update(
        &self,
        object_type: &str,
        inputs: Vec<WriteInput>,
    ) -> Result<Vec<WriteOutcome>, HubSpotError> {
        self.batch_write(WriteOp::Update, object_type, None, inputs).await
    }

    /// Creates records (`WriteInput.id` is ignored). Never sent twice once a batch may have
    /// reached HubSpot unanswered: such inputs come back `Rejected` with `DELIVERY_UNCERTAIN`.
    pub async fn batch_create(
        &self,
        object_type: &str,
        inputs: Vec<WriteInput>,
    ) -> Result<Vec<WriteOutcome>, HubSpotError> {
        self.batch_write(WriteOp::Create, object_type, None, inputs).await
    }

    /// Validates, dedupes and sends writes. Duplicates (same id, or same email without case):
    /// the last input is sent, earlier ones come back `Rejected` with `DUPLICATE_IN_BATCH`:
    /// sending them in a later batch would let an older value overwrite the newer one.
    async fn batch_write(
        &self,
        op: WriteOp,
        object_type: &str,
        id_property: Option<&str>,
        inputs: Vec<WriteInput>,
    ) -> Result<Vec<WriteOutcome>, HubSpotError> {
        let mut out: Vec<Option<WriteOutcome>> = vec![None; inputs.len()];
        let mut sendable: Vec<usize> = Vec::with_capacity(inputs.len());
        let mut keys: Vec<String> = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            if op == WriteOp::Create {
                sendable.push(i);
                continue;
            }
            match input.id.as_deref().filter(|id| !id.trim().is_empty()) {
                Some(id) => {
                    sendable.push(i);
                    keys.push(requests::dedupe_key(id, id_property));
                }
                None => {
                    out[i] = Some(WriteOutcome::Rejected {
                        trace_id: input.trace_id.clone(),
                        code: outcome_codes::MISSING_ID.to_string(),
                        message: match op {
                            WriteOp::Upsert => {
                                format!("The input has no value for the upsert key {}.", id_property.unwrap_or(""))
                            }
                            _ => "The input has no HubSpot record id to update.".to_string(),
                        },
                    });
                }
            }
        }
        if op != WriteOp::Create {
            let (kept, superseded) = requests::dedupe_keep_last(&keys);
            for s in superseded {
                let i = sendable[s];
                out[i] = Some(WriteOutcome::Rejected {
                    trace_id: inputs[i].trace_id.clone(),
                    code: outcome_codes::DUPLICATE_IN_BATCH.to_string(),
                    message: "A later input of the same call has the same id; only the last one \
                              was sent."
                        .to_string(),
                });
            }
            sendable = kept.into_iter().map(|k| sendable[k]).collect();
        }
        let items: Vec<&WriteInput> = sendable.iter().map(|i| &inputs[*i]).collect();
        let url = self.inner.paths.object_batch(object_type, op.path());
        let kind = match op {
            WriteOp::Upsert => EndpointKind::Upsert,
            WriteOp::Update => EndpointKind::Update,
            WriteOp::Create => EndpointKind::Create,
        };
        let sent = self
            .run_batches(
                kind,
                url,
                op != WriteOp::Create,
                &items,
                requests::OBJECT_BATCH_LIMIT,
                |chunk| match op {
                    WriteOp::Upsert => requests::upsert_body(id_property.unwrap_or(""), chunk),
                    WriteOp::Update => requests::update_body(chunk),
                    WriteOp::Create => requests::create_body(chunk),
                },
                |status, body, chunk| responses::interpret_write(op, id_property, status, body, chunk),
                |input, code, message| WriteOutcome::Rejected {
                    trace_id: input.trace_id.clone(),
                    code: code.to_string(),
                    message: message.to_string(),
                },
            )
            .await?;
        for (i, outcome) in sendable.into_iter().zip(sent) {
            out[i] = Some(outcome);
        }
        let outcomes: Vec<WriteOutcome> = out
            .into_iter()
            .zip(&inputs)
            .map(|(o, input)| {
                o.unwrap_or_else(|| WriteOutcome::Rejected {
                    trace_id: input.trace_id.clone(),
                    code: outcome_codes::NO_RESULT.to_string(),
                    message: "The input got no outcome.".to_string(),
                })
            })
            .collect();
        let written = outcomes.iter().filter(|o| o.is_written()).count();
        tracing::debug!(
            account = %self.account(),
            object_type,
            operation = op.path(),
            inputs = outcomes.len(),
            written,
            rejected = outcomes.len() - written,
            "Batch write finished."
        );
        Ok(outcomes)
    }

    /// Finds records by a unique property: (value, record id) for each value found, the value
    /// as requested. Values not found are simply absent.
    pub async fn batch_read_by_property(
        &self,
        object_type: &str,
        id_property: &str,
        values: Vec<String>,
    ) -> Result<Vec<(String, String)>, HubSpotError> {
        let mut seen = HashSet::new();
        let values: Vec<String> = values
            .into_iter()
            .filter(|v| !v.is_empty() && seen.insert(requests::dedupe_key(v, Some(id_property))))
            .collect();
        let url = self.inner.paths.object_batch(object_type, "read");
        let mut found = Vec::new();
        for chunk in values.chunks(requests::OBJECT_BATCH_LIMIT) {
            let call =
                Call::new(EndpointKind::Read, Method::POST, url.clone()).json(&requests::read_body(id_property, chunk));
            let reply = self.execute_or_error(&call).await?;
            match reply.status {
                200 | 207 => {
                    let (hits, errors) = responses::parse_read_results(&reply.body, id_property, chunk)
                        .map_err(|detail| self.unreadable(&call, &reply, detail))?;
                    for e in errors {
                        tracing::warn!(
                            account = %self.account(),
                            object_type,
                            code = %e.code_or("UNKNOWN_ERROR"),
                            message = %e.best_message(),
                            "HubSpot reported an error while reading records; those records count as not found."
                        );
                    }
                    found.extend(hits);
                }
                404 if ApiError::parse(&reply.body)
                    .is_some_and(|e| e.category.as_deref() == Some("OBJECT_NOT_FOUND")) => {}
                _ => return Err(self.answer_error(&call, &reply)),
            }
        }
        Ok(found)
    }

    /// Finds records whose `property` is one of `values` with CRM search (`IN` filter, values
    /// lowercased as HubSpot requires for string properties): (value as HubSpot returns it,
    /// record id). Uses as few searches as the limits allow: up to 100 values and 3,000 body
    /// characters per search, 200 results per page, and at most 10,000 results per query (a
    /// query with more matches is split by values; a single value with more is cut at 10,000).
    pub async fn search_by_values(
        &self,
        object_type: &str,
        property: &str,
        values: Vec<String>,
    ) -> Result<Vec<(String, String)>, HubSpotError> {
        let values = requests::normalize_search_values(values);
        let (chunks, too_long) = requests::search_chunks(property, &values);
        if !too_long.is_empty() {
            tracing::warn!(
                account = %self.account(),
                object_type,
                property,
                skipped = too_long.len(),
                "Some search values are too long for HubSpot's search and were skipped."
            );
        }
        let url = self.inner.paths.search(object_type);
        let mut queue: VecDeque<Vec<String>> = chunks.into();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut found = Vec::new();
        while let Some(chunk) = queue.pop_front() {
            let mut after: Option<String> = None;
            let mut fetched = 0usize;
            let mut hits = Vec::new();
            let mut split = false;
            loop {
                let call = Call::new(EndpointKind::Search, Method::POST, url.clone())
                    .search()
                    .json(&requests::search_body(property, &chunk, after.as_deref()));
                let reply = self.execute_or_error(&call).await?;
                if reply.status != 200 {
                    return Err(self.answer_error(&call, &reply));
                }
                let page = responses::parse_search_page(&reply.body, property)
                    .map_err(|detail| self.unreadable(&call, &reply, detail))?;
                let total = page.total.unwrap_or(0) as usize;
                if fetched == 0 && total > requests::SEARCH_RESULT_CAP && chunk.len() > 1 {
                    // Too many matches to page through: search each half of the values alone.
                    let half = chunk.len() / 2;
                    queue.push_front(chunk[half..].to_vec());
                    queue.push_front(chunk[..half].to_vec());
                    split = true;
                    break;
                }
                let page_len = page.hits.len();
                fetched += requests::SEARCH_PAGE_LIMIT.max(page_len);
                hits.extend(page.hits);
                match page.after {
                    Some(next) if page_len > 0 && after.as_deref() != Some(next.as_str()) => {
                        if fetched >= requests::SEARCH_RESULT_CAP {
                            tracing::warn!(
                                account = %self.account(),
                                object_type,
                                property,
                                total,
                                "A search value matches more than 10,000 records; only the first 10,000 were read."
                            );
                            break;
                        }
                        after = Some(next);
                    }
                    _ => break,
                }
            }
            if !split {
                for hit in hits {
                    if seen.insert(hit.clone()) {
                        found.push(hit);
                    }
                }
            }
        }
        Ok(found)
    }

    // ----- associations -----

    /// The association types (labels and the unlabeled default) from one object type to another.
    pub async fn association_labels(
        &self,
        from_type: &str,
        to_type: &str,
    ) -> Result<Vec<AssociationLabel>, HubSpotError> {
        let call = Call::new(
            EndpointKind::AssociationLabels,
            Method::GET,
            self.inner.paths.association_labels(from_type, to_type),
        );
        let reply = self.execute_or_error(&call).await?;
        if reply.status != 200 {
            return Err(self.answer_error(&call, &reply));
        }
        responses::parse_labels(&reply.body).map_err(|detail| self.unreadable(&call, &reply, detail))
    }

    /// Creates associations with the v4 batch endpoint (2,000 per request). Inputs for the
    /// same pair are merged into one (types united) and share its outcome. One outcome per
    /// input, in input order.
    pub async fn batch_associate(
        &self,
        from_type: &str,
        to_type: &str,
        inputs: Vec<AssociationInput>,
    ) -> Result<Vec<AssocOutcome>, HubSpotError> {
        let mut out: Vec<Option<AssocOutcome>> = vec![None; inputs.len()];
        let mut merged: Vec<AssociationInput> = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut by_pair: HashMap<(String, String), usize> = HashMap::new();
        for (i, input) in inputs.iter().enumerate() {
            let (from, to) = (input.from_id.trim(), input.to_id.trim());
            if from.is_empty() || to.is_empty() {
                out[i] = Some(AssocOutcome::Rejected {
                    trace: input.trace.clone(),
                    code: outcome_codes::MISSING_ID.to_string(),
                    message: "The association lacks a from or to record id.".to_string(),
                });
                continue;
            }
            if input.types.is_empty() {
                out[i] = Some(AssocOutcome::Rejected {
                    trace: input.trace.clone(),
                    code: outcome_codes::INVALID_INPUT.to_string(),
                    message: "The association has no association type.".to_string(),
                });
                continue;
            }
            match by_pair.get(&(from.to_string(), to.to_string())) {
                Some(m) => {
                    for t in &input.types {
                        if !merged[*m].types.contains(t) {
                            merged[*m].types.push(t.clone());
                        }
                    }
                    members[*m].push(i);
                }
                None => {
                    by_pair.insert((from.to_string(), to.to_string()), merged.len());
                    merged.push(AssociationInput {
                        trace: input.trace.clone(),
                        from_id: from.to_string(),
                        to_id: to.to_string(),
                        types: input.types.clone(),
                    });
                    members.push(vec![i]);
                }
            }
        }
        let items: Vec<&AssociationInput> = merged.iter().collect();
        let sent = self
            .run_batches(
                EndpointKind::Associations,
                self.inner.paths.association_batch_create(from_type, to_type),
                true,
                &items,
                requests::ASSOCIATION_BATCH_LIMIT,
                requests::association_create_body,
                responses::interpret_associations,
                |input, code, message| AssocOutcome::Rejected {
                    trace: input.trace.clone(),
                    code: code.to_string(),
                    message: message.to_string(),
                },
            )
            .await?;
        for (outcome, group) in sent.into_iter().zip(members) {
            for i in group {
                let trace = inputs[i].trace.clone();
                out[i] = Some(match &outcome {
                    AssocOutcome::Associated { .. } => AssocOutcome::Associated { trace },
                    AssocOutcome::Rejected { code, message, .. } => {
                        AssocOutcome::Rejected { trace, code: code.clone(), message: message.clone() }
                    }
                });
            }
        }
        Ok(out
            .into_iter()
            .zip(&inputs)
            .map(|(o, input)| {
                o.unwrap_or_else(|| AssocOutcome::Rejected {
                    trace: input.trace.clone(),
                    code: outcome_codes::NO_RESULT.to_string(),
                    message: "The input got no outcome.".to_string(),
                })
            })
            .collect())
    }

    // ----- lists -----

    /// The list called `name` for the object type (HubSpot compares names without case), or
    /// `None`.
    pub async fn find_list_by_name(&self, object_type_id: &str, name: &str) -> Result<Option<ListInfo>, HubSpotError> {
        let call = Call::new(EndpointKind::Lists, Method::GET, self.inner.paths.list_by_name(object_type_id, name));
        let reply = self.execute_or_error(&call).await?;
        match reply.status {
            200 => {
                responses::parse_list(&reply.body).map(Some).map_err(|detail| self.unreadable(&call, &reply, detail))
            }
            404 => Ok(None),
            _ => Err(self.answer_error(&call, &reply)),
        }
    }

    /// Creates a static (`MANUAL`) list. Not retried once it may have arrived unanswered.
    pub async fn create_list(&self, object_type_id: &str, name: &str) -> Result<ListInfo, HubSpotError> {
        let call = Call::new(EndpointKind::Lists, Method::POST, self.inner.paths.lists())
            .json(&requests::list_create_body(object_type_id, name))
            .not_idempotent();
        let reply = match self.execute(&call).await {
            Ok(reply) => reply,
            Err(CallError::Hub(e)) => return Err(e),
            Err(CallError::DeliveryUncertain { detail }) => {
                return Err(HubSpotError::Transport {
                    account: self.account().to_string(),
                    endpoint: call.describe(),
                    detail: format!(
                        "{detail}; the list may have been created: look it up by name before \
                         creating it again"
                    ),
                })
            }
        };
        if !(200..300).contains(&reply.status) {
            return Err(self.answer_error(&call, &reply));
        }
        let list = responses::parse_list(&reply.body).map_err(|detail| self.unreadable(&call, &reply, detail))?;
        tracing::info!(account = %self.account(), list_id = %list.list_id, name, "Created a HubSpot list.");
        Ok(list)
    }

    /// Adds records to a MANUAL or SNAPSHOT list, `list_batch_size` ids per request. HubSpot
    /// ignores ids that are already members or do not exist (`missing`).
    pub async fn list_add(&self, list_id: &str, record_ids: Vec<String>) -> Result<MembershipChange, HubSpotError> {
        self.change_membership(list_id, "add", record_ids).await
    }

    /// Removes records from a MANUAL or SNAPSHOT list, `list_batch_size` ids per request.
    pub async fn list_remove(&self, list_id: &str, record_ids: Vec<String>) -> Result<MembershipChange, HubSpotError> {
        self.change_membership(list_id, "remove", record_ids).await
    }

    async fn change_membership(
        &self,
        list_id: &str,
        change: &str,
        record_ids: Vec<String>,
    ) -> Result<MembershipChange, HubSpotError> {
        let mut seen = HashSet::new();
        let ids: Vec<String> = record_ids.into_iter().filter(|id| !id.is_empty() && seen.insert(id.clone())).collect();
        let url = self.inner.paths.list_memberships_change(list_id, change);
        let mut total = MembershipChange::default();
        for chunk in ids.chunks(self.inner.settings.list_batch_size.max(1)) {
            let call = Call::new(EndpointKind::ListMemberships, Method::PUT, url.clone())
                .json(&requests::membership_body(chunk));
            let reply = self.execute_or_error(&call).await?;
            if !(200..300).contains(&reply.status) {
                return Err(self.answer_error(&call, &reply));
            }
            let c = responses::parse_membership_change(&reply.body);
            total.added.extend(c.added);
            total.removed.extend(c.removed);
            total.missing.extend(c.missing);
        }
        if !total.missing.is_empty() {
            tracing::debug!(
                account = %self.account(),
                list_id,
                missing = total.missing.len(),
                "HubSpot ignored list membership changes for records it does not know."
            );
        }
        Ok(total)
    }

    /// Every record id in a list, page by page.
    pub async fn list_members(&self, list_id: &str) -> Result<Vec<String>, HubSpotError> {
        let mut members = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let call = Call::new(
                EndpointKind::ListMemberships,
                Method::GET,
                self.inner.paths.list_memberships(list_id, after.as_deref()),
            );
            let reply = self.execute_or_error(&call).await?;
            if reply.status != 200 {
                return Err(self.answer_error(&call, &reply));
            }
            let (ids, next) =
                responses::parse_members_page(&reply.body).map_err(|detail| self.unreadable(&call, &reply, detail))?;
            let empty = ids.is_empty();
            members.extend(ids);
            match next {
                Some(next) if !empty && after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => break,
            }
        }
        Ok(members)
    }

    // ----- the machinery -----

    /// Sends `items` in chunks of `chunk_size`, bisecting whole-chunk failures, and returns one
    /// outcome per item, in order. See the module docs for when it returns `Err`.
    #[allow(clippy::too_many_arguments)]
    async fn run_batches<I, O>(
        &self,
        kind: EndpointKind,
        url: Url,
        idempotent: bool,
        items: &[&I],
        chunk_size: usize,
        body: impl Fn(&[&I]) -> Value,
        interpret: impl Fn(u16, &str, &[&I]) -> Verdict<O>,
        reject: impl Fn(&I, &str, &str) -> O,
    ) -> Result<Vec<O>, HubSpotError> {
        let mut out: Vec<Option<O>> = (0..items.len()).map(|_| None).collect();
        let mut queue: VecDeque<Vec<usize>> =
            (0..items.len()).collect::<Vec<_>>().chunks(chunk_size.max(1)).map(<[usize]>::to_vec).collect();
        let mut answered = false;
        let mut failure: Option<HubSpotError> = None;
        while let Some(positions) = queue.pop_front() {
            if positions.is_empty() {
                continue;
            }
            let chunk: Vec<&I> = positions.iter().map(|p| items[*p]).collect();
            let mut call = Call::new(kind, Method::POST, url.clone()).json(&body(&chunk));
            call.idempotent = idempotent;
            let reply = match self.execute(&call).await {
                Ok(reply) => reply,
                Err(CallError::DeliveryUncertain { detail }) => {
                    tracing::warn!(
                        account = %self.account(),
                        endpoint = %call.describe(),
                        inputs = chunk.len(),
                        detail = %detail,
                        "A create batch may have reached HubSpot without an answer; it is not sent again."
                    );
                    let message = format!(
                        "The request may have reached HubSpot without an answer ({detail}); it was \
                         not sent again, to avoid duplicates. Look the record up before creating it."
                    );
                    for p in &positions {
                        out[*p] = Some(reject(items[*p], outcome_codes::DELIVERY_UNCERTAIN, &message));
                    }
                    answered = true;
                    continue;
                }
                Err(CallError::Hub(e)) => {
                    failure = Some(e);
                    break;
                }
            };
            match interpret(reply.status, &reply.body, &chunk) {
                Verdict::Outcomes(outcomes) => {
                    answered = true;
                    for (p, o) in positions.iter().zip(outcomes) {
                        out[*p] = Some(o);
                    }
                }
                Verdict::RejectAndResend { rejected, resend } => {
                    answered = true;
                    for (i, o) in rejected {
                        if let Some(p) = positions.get(i) {
                            out[*p] = Some(o);
                        }
                    }
                    queue.push_front(resend.iter().filter_map(|i| positions.get(*i).copied()).collect());
                }
                Verdict::Bisect if positions.len() > 1 => {
                    tracing::debug!(
                        account = %self.account(),
                        endpoint = %call.describe(),
                        status = reply.status,
                        inputs = positions.len(),
                        "HubSpot refused a whole batch for an input it did not name; splitting it to find the input."
                    );
                    let (left, right) = positions.split_at(positions.len() / 2);
                    queue.push_front(right.to_vec());
                    queue.push_front(left.to_vec());
                }
                Verdict::Bisect | Verdict::Fail => {
                    failure = Some(self.answer_error(&call, &reply));
                    break;
                }
            }
        }
        if let Some(e) = failure {
            if !answered {
                return Err(e);
            }
            tracing::warn!(
                account = %self.account(),
                endpoint = kind.as_str(),
                error = %e,
                "A batch call failed part way; its remaining inputs are rejected with the error."
            );
            let (code, message) = (e.code(), e.to_string());
            for (p, o) in out.iter_mut().enumerate() {
                if o.is_none() {
                    *o = Some(reject(items[p], code, &message));
                }
            }
        }
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(p, o)| o.unwrap_or_else(|| reject(items[p], outcome_codes::NO_RESULT, "The input got no outcome.")))
            .collect())
    }

    /// `execute`, for requests that are safe to repeat.
    async fn execute_or_error(&self, call: &Call) -> Result<Reply, HubSpotError> {
        match self.execute(call).await {
            Ok(reply) => Ok(reply),
            Err(CallError::Hub(e)) => Err(e),
            Err(CallError::DeliveryUncertain { detail }) => {
                Err(HubSpotError::Transport { account: self.account().to_string(), endpoint: call.describe(), detail })
            }
        }
    }

    /// Sends `call` until the retry decision says stop. Returns the final answer (2xx or a
    /// 4xx the caller reads); 401 and 403 become errors here.
    async fn execute(&self, call: &Call) -> Result<Reply, CallError> {
        let inner = &self.inner;
        let mut retries: u32 = 0;
        let mut refreshed_after_401 = false;
        loop {
            let (auth, bearer) = self.authorization().await.map_err(CallError::Hub)?;
            if let Err(DailyLimitReached { limit }) = inner.budget.acquire(call.class).await {
                return Err(CallError::Hub(HubSpotError::DailyLimit { account: self.account().to_string(), limit }));
            }
            let sent_at = Instant::now();
            let attempt = self.send_once(call, auth).await;
            HubSpotRequest {
                account: self.account(),
                endpoint: call.kind,
                status: attempt.as_ref().ok().map(|a| a.status),
                seconds: sent_at.elapsed().as_secs_f64(),
            }
            .emit();
            match &attempt {
                Ok(answer) => {
                    inner.budget.observe(&answer.limits, sent_at);
                    inner.stats.request(call.kind, StatusClass::of(answer.status));
                    if answer.status == 429 {
                        inner.stats.rate_limited();
                    }
                }
                Err(_) => inner.stats.request(call.kind, StatusClass::Transport),
            }
            // An expired OAuth token is refreshed once and the request sent again at once.
            if let (Auth::OAuth(session), Some(used), Ok(answer)) = (&inner.auth, &bearer, &attempt) {
                if answer.status == 401 && !refreshed_after_401 && is_expired_authentication(&answer.body) {
                    refreshed_after_401 = true;
                    session.expired(used).await.map_err(CallError::Hub)?;
                    continue;
                }
            }
            let observation = match &attempt {
                Ok(a) => Observation::Answer { status: a.status, retry_after: a.retry_after, body: &a.body },
                Err((failure, _)) => Observation::Failed(*failure),
            };
            let action = inner.policy.decide(&Attempt {
                retries,
                idempotent: call.idempotent,
                observation,
                window_frees_in: inner.budget.window_frees_in(),
                jitter: rand::random::<f64>(),
            });
            let last = describe_attempt(&attempt, bearer.as_ref().map_or(self.token(), Secret::expose));
            match action {
                RetryAction::Successful | RetryAction::DontRetry(DontRetry::FinalAnswer) => {
                    return match attempt {
                        Ok(answer) => self.check_access(call, answer).map_err(CallError::Hub),
                        Err((_, detail)) => Err(CallError::Hub(HubSpotError::Transport {
                            account: self.account().to_string(),
                            endpoint: call.describe(),
                            detail,
                        })),
                    };
                }
                RetryAction::Retry { reason, delay, pause_account } => {
                    inner.stats.retry(reason);
                    RequestRetried { account: self.account(), reason }.emit();
                    tracing::info!(
                        account = %self.account(),
                        endpoint = %call.describe(),
                        reason = reason.as_str(),
                        last = %last,
                        retry = retries + 1,
                        delay_ms = delay.as_millis() as u64,
                        "HubSpot request failed; retrying after a pause."
                    );
                    if pause_account {
                        // Every request to the account waits, this one included (in `acquire`).
                        inner.budget.pause_until(Instant::now() + delay);
                    } else {
                        tokio::time::sleep(delay).await;
                    }
                    retries += 1;
                }
                RetryAction::DontRetry(DontRetry::DailyLimit) => {
                    inner.budget.mark_daily_exhausted();
                    let limit = inner.budget.snapshot().daily_limit;
                    tracing::error!(
                        account = %self.account(),
                        limit,
                        "HubSpot reports the account's daily API limit reached; requests to it stop until the portal's midnight."
                    );
                    return Err(CallError::Hub(HubSpotError::DailyLimit {
                        account: self.account().to_string(),
                        limit,
                    }));
                }
                RetryAction::DontRetry(DontRetry::DeliveryUncertain) => {
                    return Err(CallError::DeliveryUncertain { detail: last });
                }
                RetryAction::DontRetry(DontRetry::Exhausted(reason)) => {
                    tracing::warn!(
                        account = %self.account(),
                        endpoint = %call.describe(),
                        reason = reason.as_str(),
                        attempts = retries + 1,
                        last = %last,
                        "HubSpot request failed on every attempt; giving up."
                    );
                    return Err(CallError::Hub(HubSpotError::RetriesExhausted {
                        account: self.account().to_string(),
                        endpoint: call.describe(),
                        attempts: retries + 1,
                        last,
                    }));
                }
                RetryAction::DontRetry(DontRetry::WaitTooLong(wait)) => {
                    let status = attempt.as_ref().map(|a| a.status).unwrap_or(0);
                    return Err(CallError::Hub(HubSpotError::RetryLater {
                        account: self.account().to_string(),
                        endpoint: call.describe(),
                        status,
                        retry_after_secs: wait.as_secs(),
                    }));
                }
            }
        }
    }

    /// One HTTP exchange.
    async fn send_once(&self, call: &Call, auth: HeaderValue) -> Result<RawAnswer, (TransportFailure, String)> {
        let mut request = self.inner.http.request(call.method.clone(), call.url.clone()).header(AUTHORIZATION, auth);
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        let response = request.send().await.map_err(|e| {
            let failure = if e.is_connect() || e.is_builder() {
                TransportFailure::Connect
            } else if e.is_timeout() {
                TransportFailure::Timeout
            } else {
                TransportFailure::Dropped
            };
            (failure, error_chain(&e))
        })?;
        let status = response.status().as_u16();
        let limits = RateLimitHeaders::from_headers(response.headers());
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let body = response.text().await.map_err(|e| {
            let failure = if e.is_timeout() { TransportFailure::Timeout } else { TransportFailure::Dropped };
            (failure, format!("the answer ({status}) was cut off: {}", error_chain(&e)))
        })?;
        tracing::trace!(endpoint = %call.describe(), status, "HubSpot answered.");
        Ok(RawAnswer { status, retry_after, limits, body })
    }

    /// 401 and 403 are never the caller's to read: they stop the call.
    fn check_access(&self, call: &Call, answer: RawAnswer) -> Result<Reply, HubSpotError> {
        let account = self.account().to_string();
        match answer.status {
            401 if matches!(self.inner.auth, Auth::OAuth(_)) => {
                let parsed = ApiError::parse(&answer.body).unwrap_or_default();
                Err(HubSpotError::ReauthRequired {
                    account,
                    detail: format!(
                        "HubSpot refused its access token ({}: {})",
                        parsed.category.as_deref().unwrap_or("HTTP 401"),
                        excerpt(&parsed.best_message(), self.token())
                    ),
                })
            }
            401 => {
                let parsed = ApiError::parse(&answer.body).unwrap_or_default();
                Err(HubSpotError::Unauthorized {
                    account,
                    category: parsed.category.clone().unwrap_or_else(|| "HTTP 401".to_string()),
                    message: excerpt(&parsed.best_message(), self.token()),
                })
            }
            403 => {
                let parsed = ApiError::parse(&answer.body).unwrap_or_default();
                if parsed.category.as_deref() == Some("MISSING_SCOPES") || !parsed.required_scopes.is_empty() {
                    Err(HubSpotError::MissingScopes {
                        account,
                        endpoint: call.describe(),
                        scopes: parsed.required_scopes,
                    })
                } else {
                    Err(HubSpotError::Forbidden {
                        account,
                        endpoint: call.describe(),
                        category: parsed.category.clone().unwrap_or_else(|| "HTTP 403".to_string()),
                        message: excerpt(&parsed.best_message(), self.token()),
                    })
                }
            }
            status => Ok(Reply { status, body: answer.body }),
        }
    }

    /// The error for an answer the caller cannot use.
    fn answer_error(&self, call: &Call, reply: &Reply) -> HubSpotError {
        match ApiError::parse(&reply.body) {
            Some(e) if !e.message.is_empty() || e.category.is_some() => HubSpotError::Api {
                account: self.account().to_string(),
                endpoint: call.describe(),
                status: reply.status,
                code: e.code_or(&format!("HTTP_{}", reply.status)),
                message: excerpt(&e.best_message(), self.token()),
            },
            _ => HubSpotError::Unexpected {
                account: self.account().to_string(),
                endpoint: call.describe(),
                status: reply.status,
                body: excerpt(&reply.body, self.token()),
            },
        }
    }

    /// The error for a 2xx answer whose body could not be read.
    fn unreadable(&self, call: &Call, reply: &Reply, detail: String) -> HubSpotError {
        HubSpotError::Unexpected {
            account: self.account().to_string(),
            endpoint: call.describe(),
            status: reply.status,
            body: format!("{detail}: {}", excerpt(&reply.body, self.token())),
        }
    }

    fn token(&self) -> &str {
        self.inner.settings.token.expose()
    }

    /// The `Authorization` header for the next request, and the OAuth access token in it.
    async fn authorization(&self) -> Result<(HeaderValue, Option<Secret>), HubSpotError> {
        let session = match &self.inner.auth {
            Auth::Static(header) => return Ok((header.clone(), None)),
            Auth::OAuth(session) => session,
        };
        let token = session.bearer().await?;
        let header = bearer_header(&token).ok_or_else(|| HubSpotError::ReauthRequired {
            account: self.account().to_string(),
            detail: "HubSpot issued an access token that cannot go in an HTTP header".to_string(),
        })?;
        Ok((header, Some(token)))
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

/// `Bearer <token>`, marked sensitive so it is never printed; `None` if it cannot be a header.
fn bearer_header(token: &Secret) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// True for HubSpot's 401 `EXPIRED_AUTHENTICATION`, the one 401 a refresh can answer.
fn is_expired_authentication(body: &str) -> bool {
    ApiError::parse(body).is_some_and(|e| e.category.as_deref() == Some("EXPIRED_AUTHENTICATION"))
}

/// A one-line description of an attempt, for logs and errors.
fn describe_attempt(attempt: &Result<RawAnswer, (TransportFailure, String)>, token: &str) -> String {
    match attempt {
        Ok(a) => format!("HTTP {}: {}", a.status, excerpt(&a.body, token)),
        Err((failure, detail)) => format!("{failure:?}: {}", excerpt(detail, token)),
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
