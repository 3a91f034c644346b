//! List endpoints (v3): find or create a list, change and read its memberships.

use std::collections::HashSet;

use reqwest::Method;

use crate::errors::HubSpotError;
use crate::requests::{self};
use crate::responses::{self};
use crate::stats::EndpointKind;
use crate::types::{ListInfo, MembershipChange};

use super::transport::{Call, CallError};
use super::HubSpotClient;

impl HubSpotClient {
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
}
