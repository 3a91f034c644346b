//! Property definition writes: create a property group and a property. Both are safe to
//! repeat (a second create of the same name is refused with 409), so they are retried like
//! reads, and a 409 comes back as "it already exists" rather than as an error.

use reqwest::Method;

use crate::errors::HubSpotError;
use crate::requests;
use crate::responses;
use crate::stats::EndpointKind;
use crate::types::{NewProperty, NewPropertyGroup, PropertyInfo};

use super::transport::Call;
use super::HubSpotClient;

impl HubSpotClient {
    /// Creates a property group. `Ok(true)` when created, `Ok(false)` when a group of that
    /// name exists (409). A token without the object's `crm.schemas.*.write` scope gets
    /// `HubSpotError::MissingScopes`.
    pub async fn create_property_group(
        &self,
        object_type: &str,
        group: &NewPropertyGroup,
    ) -> Result<bool, HubSpotError> {
        let call = Call::new(EndpointKind::Properties, Method::POST, self.inner.paths.property_groups(object_type))
            .json(&requests::property_group_body(group));
        let reply = self.execute_or_error(&call).await?;
        match reply.status {
            200..=299 => {
                tracing::info!(account = %self.account(), object_type, group = %group.name, "Created a property group.");
                Ok(true)
            }
            409 => Ok(false),
            _ => Err(self.answer_error(&call, &reply)),
        }
    }

    /// Creates a property. `Ok(Some(..))` with the created definition, `Ok(None)` when a
    /// property of that name exists (409; read the properties to see what it is). A token
    /// without the object's `crm.schemas.*.write` scope gets `HubSpotError::MissingScopes`.
    pub async fn create_property(
        &self,
        object_type: &str,
        property: &NewProperty,
    ) -> Result<Option<PropertyInfo>, HubSpotError> {
        let call = Call::new(EndpointKind::Properties, Method::POST, self.inner.paths.property_create(object_type))
            .json(&requests::property_create_body(property));
        let reply = self.execute_or_error(&call).await?;
        match reply.status {
            200..=299 => {
                let created =
                    responses::parse_property(&reply.body).map_err(|detail| self.unreadable(&call, &reply, detail))?;
                tracing::info!(
                    account = %self.account(),
                    object_type,
                    property = %created.name,
                    unique = created.has_unique_value,
                    "Created a property."
                );
                Ok(Some(created))
            }
            409 => Ok(None),
            _ => Err(self.answer_error(&call, &reply)),
        }
    }
}
