//! Record endpoints: batch upsert, update and create, batch read by a unique property, and
//! search by values.

use std::collections::{HashSet, VecDeque};

use reqwest::Method;

use crate::errors::{ApiError, HubSpotError};
use crate::requests::{self};
use crate::responses::{self, WriteOp};
use crate::stats::EndpointKind;
use crate::types::{outcome_codes, WriteInput, WriteOutcome};

use super::transport::Call;
use super::HubSpotClient;

impl HubSpotClient {
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
}
