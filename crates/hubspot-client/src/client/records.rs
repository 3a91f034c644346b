//! Single reads that tell whether a record or a list still exists: a record read by id (a
//! merged-away id answers with the surviving record), a list read by id, and the combined
//! membership change of a list.

use reqwest::Method;

use crate::errors::HubSpotError;
use crate::requests;
use crate::responses;
use crate::stats::EndpointKind;
use crate::types::{ListInfo, MembershipChange};

use super::transport::Call;
use super::HubSpotClient;

impl HubSpotClient {
    /// Reads one record by its HubSpot id and returns the id HubSpot answers with: the same id
    /// for a live record, the surviving record's id for an id merged into another (recorded
    /// real answers: a single read or PATCH of a merged-away id answers with the survivor), or
    /// `None` when no live record has the id (404, JSON or HTML: deleted or never there).
    pub async fn read_record_id(&self, object_type: &str, id: &str) -> Result<Option<String>, HubSpotError> {
        let call = Call::new(EndpointKind::Read, Method::GET, self.inner.paths.object_by_id(object_type, id));
        let reply = self.execute_or_error(&call).await?;
        match reply.status {
            200 => responses::parse_record_id(&reply.body)
                .map(Some)
                .map_err(|detail| self.unreadable(&call, &reply, detail)),
            404 => Ok(None),
            _ => Err(self.answer_error(&call, &reply)),
        }
    }

    /// The list with this id, or `None` when it does not exist (deleted in HubSpot). Its name
    /// may differ from the one it was created with: lists keep their id when renamed.
    pub async fn get_list(&self, list_id: &str) -> Result<Option<ListInfo>, HubSpotError> {
        let call = Call::new(EndpointKind::Lists, Method::GET, self.inner.paths.list_by_id(list_id));
        let reply = self.execute_or_error(&call).await?;
        match reply.status {
            200 => {
                responses::parse_list(&reply.body).map(Some).map_err(|detail| self.unreadable(&call, &reply, detail))
            }
            404 => Ok(None),
            _ => Err(self.answer_error(&call, &reply)),
        }
    }

    /// Adds and removes members of a MANUAL or SNAPSHOT list in one request
    /// (`PUT .../memberships/add-and-remove`), at most `list_batch_size` ids per request in
    /// all (see `requests::add_and_remove_chunks`).
    pub async fn list_add_and_remove(
        &self,
        list_id: &str,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<MembershipChange, HubSpotError> {
        let dedupe = |ids: Vec<String>| {
            let mut seen = std::collections::HashSet::new();
            ids.into_iter().filter(|id| !id.is_empty() && seen.insert(id.clone())).collect::<Vec<_>>()
        };
        let (add, remove) = (dedupe(add), dedupe(remove));
        let url = self.inner.paths.list_memberships_change(list_id, "add-and-remove");
        let cap = self.inner.settings.list_batch_size.max(1);
        let mut total = MembershipChange::default();
        for (adds, removes) in requests::add_and_remove_chunks(add.len(), remove.len(), cap) {
            let body = requests::add_and_remove_body(&add[adds], &remove[removes]);
            let call = Call::new(EndpointKind::ListMemberships, Method::PUT, url.clone()).json(&body);
            let reply = self.execute_or_error(&call).await?;
            if !(200..300).contains(&reply.status) {
                return Err(self.answer_error(&call, &reply));
            }
            let c = responses::parse_membership_change(&reply.body);
            total.added.extend(c.added);
            total.removed.extend(c.removed);
            total.missing.extend(c.missing);
        }
        Ok(total)
    }
}
