//! Association endpoints (v4): the labels of a pair of object types, and batch creates.

use std::borrow::Cow;
use std::collections::HashMap;

use reqwest::Method;

use crate::errors::HubSpotError;
use crate::requests::{self};
use crate::responses::{self};
use crate::stats::EndpointKind;
use crate::types::{outcome_codes, AssocOutcome, AssociationInput, AssociationLabel};

use super::transport::Call;
use super::HubSpotClient;

impl HubSpotClient {
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
        inputs: &[AssociationInput],
    ) -> Result<Vec<AssocOutcome>, HubSpotError> {
        let mut out: Vec<Option<AssocOutcome>> = vec![None; inputs.len()];
        // Borrowed from `inputs` unless merging changes them: thousands of inputs are in flight
        // per request, and a copy of each would double what a request holds.
        let mut merged: Vec<Cow<'_, AssociationInput>> = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut by_pair: HashMap<(&str, &str), usize> = HashMap::new();
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
            match by_pair.get(&(from, to)) {
                Some(m) => {
                    for t in &input.types {
                        if !merged[*m].types.contains(t) {
                            merged[*m].to_mut().types.push(t.clone());
                        }
                    }
                    members[*m].push(i);
                }
                None => {
                    by_pair.insert((from, to), merged.len());
                    merged.push(if from.len() == input.from_id.len() && to.len() == input.to_id.len() {
                        Cow::Borrowed(input)
                    } else {
                        Cow::Owned(AssociationInput {
                            trace: input.trace.clone(),
                            from_id: from.to_string(),
                            to_id: to.to_string(),
                            types: input.types.clone(),
                        })
                    });
                    members.push(vec![i]);
                }
            }
        }
        drop(by_pair);
        let items: Vec<&AssociationInput> = merged.iter().map(|input| input.as_ref()).collect();
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
            .zip(inputs)
            .map(|(o, input)| {
                o.unwrap_or_else(|| AssocOutcome::Rejected {
                    trace: input.trace.clone(),
                    code: outcome_codes::NO_RESULT.to_string(),
                    message: "The input got no outcome.".to_string(),
                })
            })
            .collect())
    }
}
