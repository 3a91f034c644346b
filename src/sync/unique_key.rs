//! hubsync's own unique key property, with the user's consent (`unique_key_property = true`):
//! `hubsync_key`, a text property with `hasUniqueValue: true` in a property group `hubsync` of
//! its own, created once per object type. A sync whose match property is not unique still finds
//! a new row's record by search the first time; a row not found is then upserted by its key
//! instead of created, and a record found gets the key written too. An upsert by a unique
//! property is idempotent, so a re-send after a gateway error, a lost answer or a crash updates
//! the record the first attempt made instead of making a second one.
//!
//! The key is `<sync name>:<primary key>`: stable for the row, different for two syncs writing
//! the same object type (sync names are unique), and the same for a sync moved to another
//! machine under the same name. Contacts never use it. Without the object's
//! `crm.schemas.*.write` scope (or with a `hubsync_key` that is not unique), a run says so once
//! and falls back to journaled creates, which are reconciled instead of re-sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::object::ObjectMeta;
use crate::config::{SyncMode, SyncSpec};
use hubspot_client::{HubSpotClient, HubSpotError, NewProperty, NewPropertyGroup, WriteInput, WriteOutcome};

/// The key property's name.
pub const KEY_PROPERTY: &str = "hubsync_key";
/// The property group it lives in.
pub const KEY_GROUP: &str = "hubsync";

/// The key of one row of one sync.
pub(crate) fn key_value(sync: &str, pk: &str) -> String {
    format!("{sync}:{pk}")
}

/// The definition hubsync creates.
pub(crate) fn key_definition() -> NewProperty {
    NewProperty {
        name: KEY_PROPERTY.to_string(),
        label: "hubsync key".to_string(),
        description: "Set by hubsync: `<sync name>:<primary key>` of the model row this record is synced from. \
                      hubsync creates records by upserting on it, so a retried create cannot make a duplicate. \
                      Do not edit or reuse it."
            .to_string(),
        type_: "string".to_string(),
        field_type: "text".to_string(),
        group_name: KEY_GROUP.to_string(),
        has_unique_value: true,
        form_field: false,
    }
}

fn key_group() -> NewPropertyGroup {
    NewPropertyGroup { name: KEY_GROUP.to_string(), label: "hubsync".to_string(), display_order: -1 }
}

/// Whether the sync would use the key property if it can: consent given, not contacts, a match
/// property that is not unique (a unique one is upserted by already), and a mode that creates.
pub(crate) fn wanted(sync: &SyncSpec, meta: &ObjectMeta) -> bool {
    sync.unique_key_property
        && meta.type_id != "0-1"
        && sync.mode != SyncMode::Update
        && !meta.is_unique(&sync.match_on.property)
}

/// The upsert inputs for rows not found by search: `(primary key, properties to send)` each,
/// keyed by the row's key, which is also written as a property.
pub(crate) fn upsert_inputs(sync: &str, rows: Vec<(String, BTreeMap<String, String>)>) -> Vec<WriteInput> {
    rows.into_iter()
        .map(|(pk, mut properties)| {
            let key = key_value(sync, &pk);
            properties.insert(KEY_PROPERTY.to_string(), key.clone());
            WriteInput { trace_id: pk, id: Some(key), properties }
        })
        .collect()
}

/// Whether HubSpot refused to write the row's key onto the record search found because another
/// record holds it. Only this sync writes its keys, so that record is the one an earlier
/// attempt made for the row (its answer lost, and search not showing it yet): the row belongs
/// to it, and is upserted by its key instead.
pub(crate) fn key_taken(outcome: &WriteOutcome) -> bool {
    matches!(outcome, WriteOutcome::Rejected { message, .. } if message.contains(KEY_PROPERTY))
}

/// Makes sure the key property exists and is unique, creating its group and itself when
/// missing. `true` when creates go by it; `false` (after a warning, once per account and
/// object type in this process) when hubsync must fall back to journaled creates.
pub(crate) async fn ensure(client: &HubSpotClient, sync: &SyncSpec, meta: &ObjectMeta) -> bool {
    if !wanted(sync, meta) {
        return false;
    }
    if let Some(p) = meta.property(KEY_PROPERTY) {
        if p.has_unique_value {
            return true;
        }
        fall_back(
            client,
            sync,
            meta,
            format!("the portal has a property `{KEY_PROPERTY}` on {} that is not unique", sync.object),
        );
        return false;
    }
    match create_key_property(client, &meta.path_name).await {
        Ok(true) => {
            tracing::info!(
                sync = %sync.name,
                object_type = %sync.object,
                property = KEY_PROPERTY,
                group = KEY_GROUP,
                "Created hubsync's unique key property; records not found by search are upserted by it."
            );
            true
        }
        Ok(false) => {
            fall_back(
                client,
                sync,
                meta,
                format!("the portal has a property `{KEY_PROPERTY}` on {} that is not unique", sync.object),
            );
            false
        }
        Err(HubSpotError::MissingScopes { .. }) => {
            let scope = crate::auth::unique_key_scope(sync).map(|n| n.scope).unwrap_or_default();
            fall_back(client, sync, meta, format!("the token lacks {scope}, which creating a property needs"));
            false
        }
        Err(e) => {
            fall_back(client, sync, meta, format!("creating it failed: {}", e));
            false
        }
    }
}

/// Creates the key's group and the key; true when the portal then has a unique `hubsync_key`.
/// Any name conflict is a 409, so both calls are safe to repeat.
async fn create_key_property(client: &HubSpotClient, object_type: &str) -> Result<bool, HubSpotError> {
    client.create_property_group(object_type, &key_group()).await?;
    match client.create_property(object_type, &key_definition()).await? {
        Some(p) => Ok(p.has_unique_value),
        // Created meanwhile by another run: see what it is.
        None => {
            Ok(client.list_properties(object_type).await?.iter().any(|p| p.name == KEY_PROPERTY && p.has_unique_value))
        }
    }
}

/// Accounts and object types already warned about in this process.
static WARNED: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

fn fall_back(client: &HubSpotClient, sync: &SyncSpec, meta: &ObjectMeta, reason: String) {
    let first = WARNED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((client.settings().account.clone(), meta.type_id.clone()));
    if first {
        tracing::warn!(
            sync = %sync.name,
            object_type = %sync.object,
            property = KEY_PROPERTY,
            reason = %reason,
            "hubsync cannot use its unique key property, so new records are created with journaled creates \
             (reconciled by search after an uncertain answer) instead of upserted by it; grant the scope, or set \
             unique_key_property = false to stop trying."
        );
    } else {
        tracing::debug!(sync = %sync.name, reason = %reason, "Unique key property unavailable; journaled creates.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_sync_and_the_row() {
        assert_eq!(key_value("firms", "42"), "firms:42");
        assert_ne!(key_value("firms", "1"), key_value("firms_eu", "1"), "two syncs never share a key");
        let inputs = upsert_inputs("firms", vec![("7".into(), BTreeMap::from([("name".into(), "Acme".into())]))]);
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].trace_id, "7");
        assert_eq!(inputs[0].id.as_deref(), Some("firms:7"));
        assert_eq!(inputs[0].properties.get(KEY_PROPERTY).map(String::as_str), Some("firms:7"));
        assert_eq!(inputs[0].properties.get("name").map(String::as_str), Some("Acme"));
    }

    #[test]
    fn the_definition_is_a_unique_text_property_in_its_own_group() {
        let d = key_definition();
        assert!(d.has_unique_value);
        assert_eq!((d.type_.as_str(), d.field_type.as_str(), d.group_name.as_str()), ("string", "text", KEY_GROUP));
        assert!(!d.form_field);
    }
}
