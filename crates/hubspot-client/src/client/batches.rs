//! The batch machinery: chunk the inputs, send each chunk, map the answers back to the inputs,
//! and bisect whole-batch failures down to the bad input.

use std::collections::VecDeque;

use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::errors::HubSpotError;
use crate::responses::Verdict;
use crate::stats::EndpointKind;
use crate::types::outcome_codes;

use super::transport::{Call, CallError};
use super::HubSpotClient;

impl HubSpotClient {
    // ----- the machinery -----

    /// Sends `items` in chunks of `chunk_size`, bisecting whole-chunk failures, and returns one
    /// outcome per item, in order. See the module docs for when it returns `Err`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_batches<I, O>(
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
}
