//! The scopes a sync needs (https://developers.hubspot.com/scopes), as a pure function of its spec,
//! and the message that names the sync, the operation and the missing scope.

use crate::config::{SyncMode, SyncSpec};
use hubspot_client::HubSpotError;
use hubspot_model::objects::{is_custom_type_id, standard_object};

/// One scope a sync needs, and the operation that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeNeed {
    /// What the sync does with it, e.g. `upsert deals` or `read contacts properties`.
    pub operation: String,
    /// The scope, e.g. `crm.objects.deals.write`.
    pub scope: String,
}

/// The scope family of an object type: `contacts`, `deals`, ..., `custom` or `tickets`.
fn family(object: &str) -> &'static str {
    match standard_object(object).map(|o| o.name) {
        Some(
            name @ ("contacts" | "companies" | "deals" | "tickets" | "products" | "line_items" | "quotes" | "leads"),
        ) => name,
        // Engagements ride on the contact scopes.
        Some(_) => "contacts",
        None => "custom",
    }
}

fn object_scope(object: &str, verb: &str) -> String {
    match family(object) {
        "tickets" => "tickets".to_string(),
        f => format!("crm.objects.{f}.{verb}"),
    }
}

/// Every scope `sync` needs, in a stable order without repeats.
pub fn required_scopes(sync: &SyncSpec) -> Vec<ScopeNeed> {
    let mut needs: Vec<ScopeNeed> = Vec::new();
    let mut add = |operation: String, scope: String| {
        if !needs.iter().any(|n| n.scope == scope) {
            needs.push(ScopeNeed { operation, scope });
        }
    };
    let object = sync.object.as_str();
    let fam = family(object);
    let custom = fam == "custom" || is_custom_type_id(object);
    add(format!("read {object} records"), object_scope(object, "read"));
    let schema = if custom { "custom" } else { fam };
    add(format!("read {object} properties"), format!("crm.schemas.{schema}.read"));
    if custom {
        add(format!("find the custom object `{object}`"), "crm.schemas.custom.read".to_string());
    }
    let verb = match sync.mode {
        SyncMode::Upsert => "upsert",
        SyncMode::Update => "update",
        SyncMode::Create => "create",
    };
    add(format!("{verb} {object}"), object_scope(object, "write"));
    if let Some(need) = unique_key_scope(sync) {
        add(need.operation, need.scope);
    }
    for a in &sync.associations {
        add(format!("associate {object} with {}", a.to), object_scope(&a.to, "read"));
        add(format!("associate {object} with {}", a.to), object_scope(&a.to, "write"));
    }
    if sync.list_name.is_some() {
        add("keep its list".to_string(), "crm.lists.read".to_string());
        add("keep its list".to_string(), "crm.lists.write".to_string());
    }
    needs
}

/// The scope that creating the sync's unique key property (`unique_key_property = true`) needs:
/// the object's `crm.schemas.*.write`. `None` when the setting is off, or for contacts, which
/// never use it. Without the scope a run falls back to journaled creates.
pub fn unique_key_scope(sync: &SyncSpec) -> Option<ScopeNeed> {
    let object = sync.object.as_str();
    let fam = family(object);
    if !sync.unique_key_property || standard_object(object).is_some_and(|o| o.type_id == "0-1") {
        return None;
    }
    let schema = if fam == "custom" || is_custom_type_id(object) { "custom" } else { fam };
    Some(ScopeNeed {
        operation: format!("create its unique key property on {object}"),
        scope: format!("crm.schemas.{schema}.write"),
    })
}

/// True when `granted` holds `scope`, or a sensitive-data variant HubSpot accepts in its place
/// (`crm.objects.contacts.sensitive.write.v2` for `crm.objects.contacts.write`).
pub fn is_granted(granted: &[String], scope: &str) -> bool {
    granted.iter().any(|g| {
        g == scope
            || scope.strip_prefix("crm.objects.").and_then(|rest| rest.rsplit_once('.')).is_some_and(
                |(object, verb)| {
                    [
                        format!("crm.objects.{object}.sensitive.{verb}.v2"),
                        format!("crm.objects.{object}.highly_sensitive.{verb}.v2"),
                    ]
                    .contains(g)
                },
            )
    })
}

/// The scopes `sync` needs that `granted` lacks.
pub fn missing_scopes(sync: &SyncSpec, granted: &[String]) -> Vec<ScopeNeed> {
    required_scopes(sync).into_iter().filter(|n| !is_granted(granted, &n.scope)).collect()
}

/// "sync `deals` needs crm.objects.deals.write to upsert deals": the message for one missing
/// scope, the same from `validate` and from a run.
pub fn missing_scope_message(sync: &str, scope: &str, operation: &str) -> String {
    format!(
        "sync `{sync}` needs {scope} to {operation}; add the scope to the private app (then update its \
         token) or run `hubsync auth login` again"
    )
}

/// A HubSpot error as the user reads it: a missing scope names the sync, the call and the scope.
pub fn describe_hubspot_error(sync: &str, error: &HubSpotError) -> String {
    match error {
        HubSpotError::MissingScopes { endpoint, scopes, .. } => {
            let scope = scopes.first().map(String::as_str).unwrap_or("(a scope HubSpot did not name)");
            let mut message = missing_scope_message(sync, scope, &format!("call {endpoint}"));
            if scopes.len() > 1 {
                message.push_str(&format!(" (HubSpot accepts any of: {})", scopes.join(", ")));
            }
            message
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AssociationConfig, MatchConfig};

    fn spec(object: &str, mode: SyncMode) -> SyncSpec {
        SyncSpec {
            name: "s".into(),
            warehouse: "pg".into(),
            hubspot: "main".into(),
            model_sql: "select 1".into(),
            model_file: None,
            primary_key: "id".into(),
            object: object.into(),
            mode,
            match_on: MatchConfig { column: "id".into(), property: "external_id".into() },
            fields: Default::default(),
            associations: Vec::new(),
            list_name: None,
            key: "syncs[0]".into(),
            schedule: None,
            unique_key_property: false,
            on_delete: Default::default(),
            max_deletes: Default::default(),
        }
    }

    fn scopes(s: &SyncSpec) -> Vec<String> {
        required_scopes(s).into_iter().map(|n| n.scope).collect()
    }

    #[test]
    fn deals_upsert_needs_read_schema_and_write() {
        assert_eq!(
            scopes(&spec("deals", SyncMode::Upsert)),
            ["crm.objects.deals.read", "crm.schemas.deals.read", "crm.objects.deals.write"]
        );
        let needs = required_scopes(&spec("deals", SyncMode::Upsert));
        assert_eq!(needs[2].operation, "upsert deals");
    }

    #[test]
    fn tickets_custom_associations_and_lists() {
        assert_eq!(scopes(&spec("ticket", SyncMode::Update)), ["tickets", "crm.schemas.tickets.read"]);
        let mut s = spec("pets", SyncMode::Create);
        s.associations.push(AssociationConfig {
            to: "companies".into(),
            type_name: None,
            column: "c".into(),
            match_property: "domain".into(),
            remove_stale: false,
        });
        s.list_name = Some("l".into());
        assert_eq!(
            scopes(&s),
            [
                "crm.objects.custom.read",
                "crm.schemas.custom.read",
                "crm.objects.custom.write",
                "crm.objects.companies.read",
                "crm.objects.companies.write",
                "crm.lists.read",
                "crm.lists.write",
            ]
        );
    }

    #[test]
    fn the_unique_key_property_needs_the_schema_write_scope() {
        let mut s = spec("companies", SyncMode::Upsert);
        assert!(!scopes(&s).iter().any(|x| x.contains("schemas.companies.write")));
        s.unique_key_property = true;
        assert_eq!(
            scopes(&s),
            [
                "crm.objects.companies.read",
                "crm.schemas.companies.read",
                "crm.objects.companies.write",
                "crm.schemas.companies.write"
            ]
        );
        assert_eq!(unique_key_scope(&s).unwrap().operation, "create its unique key property on companies");
        let mut pets = spec("pets", SyncMode::Upsert);
        pets.unique_key_property = true;
        assert_eq!(unique_key_scope(&pets).unwrap().scope, "crm.schemas.custom.write");
        let mut contacts = spec("contacts", SyncMode::Upsert);
        contacts.unique_key_property = true;
        assert_eq!(unique_key_scope(&contacts), None, "contacts never use it");
    }

    #[test]
    fn sensitive_variants_grant_the_plain_scope() {
        let granted = vec!["crm.objects.deals.read".to_string(), "crm.objects.deals.sensitive.write.v2".to_string()];
        assert!(is_granted(&granted, "crm.objects.deals.write"));
        assert!(!is_granted(&granted, "crm.schemas.deals.read"));
        let missing = missing_scopes(&spec("deals", SyncMode::Upsert), &granted);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].scope, "crm.schemas.deals.read");
    }

    #[test]
    fn missing_scope_error_names_sync_and_scope() {
        let e = HubSpotError::MissingScopes {
            account: "main".into(),
            endpoint: "POST /crm/objects/2026-03/deals/batch/upsert".into(),
            scopes: vec!["crm.objects.deals.write".into(), "crm.objects.deals.sensitive.write.v2".into()],
        };
        let m = describe_hubspot_error("deals", &e);
        assert!(m.starts_with("sync `deals` needs crm.objects.deals.write to call POST"), "{m}");
    }
}
