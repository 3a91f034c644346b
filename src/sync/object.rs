//! Which HubSpot object a sync writes to, and what its properties allow: resolved once per run
//! from the schemas and properties APIs.

use crate::config::SyncSpec;
use hubspot_client::{HubSpotClient, PropertyInfo};
use hubspot_model::objects;

use super::SyncError;

/// A resolved object type and its properties.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    /// What goes in API paths: the standard object's name or the custom object's `2-NNN` id.
    pub path_name: String,
    /// The object type id (`0-1`, `2-123`).
    pub type_id: String,
    pub properties: Vec<PropertyInfo>,
}

impl ObjectMeta {
    pub fn property(&self, name: &str) -> Option<&PropertyInfo> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// True when the property can key a batch upsert: contacts' `email`, or any property with
    /// `hasUniqueValue`.
    pub fn is_unique(&self, property: &str) -> bool {
        (self.type_id == "0-1" && property == "email") || self.property(property).is_some_and(|p| p.has_unique_value)
    }
}

/// Finds the object type: a standard object by name or id, or a custom object by `2-NNN` id,
/// fully qualified name (`p123_pets`, `p_pets`) or plain name, through the schemas API.
pub async fn resolve_object(client: &HubSpotClient, sync: &SyncSpec) -> Result<ObjectMeta, SyncError> {
    resolve_object_name(client, sync, &sync.object, &format!("{}.object", sync.key)).await
}

/// Resolves any object type named in a sync's config (`key` says where, for messages).
pub async fn resolve_object_name(
    client: &HubSpotClient,
    sync: &SyncSpec,
    wanted: &str,
    key: &str,
) -> Result<ObjectMeta, SyncError> {
    let wanted = wanted.trim();
    let (path_name, type_id) = if let Some(standard) = objects::standard_object(wanted) {
        (standard.name.to_string(), standard.type_id.to_string())
    } else {
        let schemas = client.list_schemas().await?;
        let lower = wanted.to_ascii_lowercase();
        let short = lower.strip_prefix("p_").unwrap_or(&lower).to_string();
        let found = schemas.iter().find(|s| {
            s.object_type_id == wanted
                || s.fully_qualified_name.eq_ignore_ascii_case(wanted)
                || s.name.eq_ignore_ascii_case(&short)
        });
        match found {
            Some(schema) => (schema.object_type_id.clone(), schema.object_type_id.clone()),
            None => {
                let known: Vec<String> = schemas.iter().map(|s| format!("{} ({})", s.name, s.object_type_id)).collect();
                return Err(SyncError::Config {
                    sync: sync.name.clone(),
                    key: key.to_string(),
                    message: format!(
                        "unknown object type `{wanted}`: not a standard object, and the portal has no custom object \
                         with that name or id (custom objects: {})",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ),
                });
            }
        }
    };
    let properties = client.list_properties(&path_name).await?;
    Ok(ObjectMeta { path_name, type_id, properties })
}

/// Checks the sync's property mappings against the object's properties: every mapped
/// property must exist and be writable, and the match property must exist.
pub fn check_mappings(sync: &SyncSpec, meta: &ObjectMeta) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (column, property) in &sync.fields {
        let key = format!("{}.fields.{column}", sync.key);
        match meta.property(property) {
            None => problems.push((
                key,
                format!(
                    "property `{property}` does not exist on {}; run `hubsync fields {}` to list them",
                    sync.object, sync.name
                ),
            )),
            Some(p) if p.read_only_value => problems.push((
                key,
                format!("property `{property}` of {} is read-only; HubSpot refuses writes to it", sync.object),
            )),
            Some(_) => {}
        }
    }
    if meta.property(&sync.match_on.property).is_none() {
        problems.push((
            format!("{}.match.property", sync.key),
            format!("property `{}` does not exist on {}", sync.match_on.property, sync.object),
        ));
    }
    problems
}

/// Resolves the sync's object once, when first needed.
pub(crate) async fn object_meta<'m>(
    slot: &'m mut Option<ObjectMeta>,
    client: &HubSpotClient,
    sync: &SyncSpec,
) -> Result<&'m ObjectMeta, SyncError> {
    if slot.is_none() {
        *slot = Some(resolve_object(client, sync).await?);
    }
    slot.as_ref().ok_or_else(|| SyncError::Config {
        sync: sync.name.clone(),
        key: format!("{}.object", sync.key),
        message: "the object type could not be resolved".into(),
    })
}
