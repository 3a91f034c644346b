//! Removals: archiving records and removing associations (whole pairs, or only some labels).
//! Each call is one request per chunk; HubSpot answers 204 with no body, whatever the inputs'
//! state (an id already archived or unknown is no error), so a removal sent again is harmless
//! and these requests are retried like any idempotent one.

use reqwest::Method;

use crate::errors::HubSpotError;
use crate::requests;
use crate::stats::EndpointKind;

use super::transport::Call;
use super::HubSpotClient;

/// One association type to remove from a pair: `(from id, to id, [(category, type id)])`.
pub type LabelRemoval = (String, String, Vec<(String, u32)>);

impl HubSpotClient {
    /// Archives records by id with `batch/archive`, 100 ids per request. Archived records go
    /// to HubSpot's recycle bin and lose their associations and list memberships.
    pub async fn batch_archive(&self, object_type: &str, ids: &[String]) -> Result<(), HubSpotError> {
        let url = self.inner.paths.object_batch(object_type, "archive");
        for chunk in ids.chunks(requests::OBJECT_BATCH_LIMIT) {
            let call = Call::new(EndpointKind::Archive, Method::POST, url.clone()).json(&requests::archive_body(chunk));
            self.expect_success(&call).await?;
        }
        Ok(())
    }

    /// Removes every association between each `(from id, to id)` pair, with the v4
    /// `batch/archive`, up to 2,000 pairs per request.
    pub async fn batch_unlink(
        &self,
        from_type: &str,
        to_type: &str,
        pairs: &[(String, String)],
    ) -> Result<(), HubSpotError> {
        let url = self.inner.paths.association_batch_archive(from_type, to_type, false);
        for chunk in pairs.chunks(requests::ASSOCIATION_BATCH_LIMIT) {
            let call = Call::new(EndpointKind::Archive, Method::POST, url.clone())
                .json(&requests::association_archive_body(chunk));
            self.expect_success(&call).await?;
        }
        Ok(())
    }

    /// Removes only the listed association types (labels) between pairs, with the v4
    /// `batch/labels/archive`, up to 2,000 pairs per request. The pair's other labels stay.
    pub async fn batch_unlabel(
        &self,
        from_type: &str,
        to_type: &str,
        removals: &[LabelRemoval],
    ) -> Result<(), HubSpotError> {
        let url = self.inner.paths.association_batch_archive(from_type, to_type, true);
        for chunk in removals.chunks(requests::ASSOCIATION_BATCH_LIMIT) {
            let inputs: Vec<crate::types::AssociationInput> = chunk
                .iter()
                .map(|(from, to, types)| crate::types::AssociationInput {
                    trace: String::new(),
                    from_id: from.clone(),
                    to_id: to.clone(),
                    types: types.clone(),
                })
                .collect();
            let refs: Vec<&crate::types::AssociationInput> = inputs.iter().collect();
            let call = Call::new(EndpointKind::Archive, Method::POST, url.clone())
                .json(&requests::association_create_body(&refs));
            self.expect_success(&call).await?;
        }
        Ok(())
    }

    /// Sends a call that must answer 2xx; any other final answer is an error.
    async fn expect_success(&self, call: &Call) -> Result<(), HubSpotError> {
        let reply = self.execute_or_error(call).await?;
        if (200..300).contains(&reply.status) {
            Ok(())
        } else {
            Err(self.answer_error(call, &reply))
        }
    }
}
