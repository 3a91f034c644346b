//! `hubsync validate`: checks a sync against its warehouse and its portal before anything is
//! sent: the model runs (described, not read), its columns exist, the object exists, every
//! mapped property exists, is writable and fits the column's type, and the match property is
//! unique (or a warning says what that costs).

use std::collections::BTreeSet;

use super::links::{parse_link_cell, resolve_rules};
use super::object::{check_mappings, resolve_object};
use super::stage::connect_source;
use super::SyncError;
use crate::config::{Config, SyncMode, SyncSpec};
use crate::source::{select_columns, ColumnInfo, ValueKind};
use hubspot_client::{HubSpotClient, HubSpotError, PropertyInfo, WriteOp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing `validate` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub sync: String,
    /// The config key it is about, e.g. `syncs[0].fields.plan`.
    pub key: String,
    pub message: String,
}

/// Checks one sync; every finding is returned, not only the first.
pub async fn validate_sync(config: &Config, sync: &SyncSpec, client: &HubSpotClient) -> Vec<Finding> {
    let mut findings = Vec::new();
    let error =
        |key: String, message: String| Finding { severity: Severity::Error, sync: sync.name.clone(), key, message };
    let columns = match describe(config, sync).await {
        Ok(columns) => columns,
        Err(e) => {
            findings.push(error(format!("{}.model", sync.key), e.to_string()));
            Vec::new()
        }
    };
    if !columns.is_empty() {
        let mut wanted = vec![
            (format!("{}.primary_key", sync.key), sync.primary_key.clone()),
            (format!("{}.match.column", sync.key), sync.match_on.column.clone()),
        ];
        wanted.extend(sync.fields.keys().map(|c| (format!("{}.fields.{c}", sync.key), c.clone())));
        for (key, column) in wanted {
            if !columns.iter().any(|c| c.name == column) {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                findings.push(error(
                    key,
                    format!("the model has no column `{column}` (its columns: {})", names.join(", ")),
                ));
            }
        }
    }
    // An OAuth token lists its scopes: every missing one is named before any call fails on it.
    if let Some(info) = client.oauth_token_info().await {
        let missing = match info {
            Ok(info) => crate::auth::missing_scopes(sync, &info.scopes),
            Err(e) => {
                findings.push(error(format!("{}.hubspot", sync.key), e.to_string()));
                return findings;
            }
        };
        // Without the schema write scope, the unique key property falls back to journaled
        // creates: a warning, not an error.
        let key_scope = crate::auth::unique_key_scope(sync).map(|n| n.scope);
        let (optional, missing): (Vec<_>, Vec<_>) =
            missing.into_iter().partition(|n| key_scope.as_deref() == Some(n.scope.as_str()));
        for need in &missing {
            findings.push(error(
                format!("{}.hubspot", sync.key),
                crate::auth::missing_scope_message(&sync.name, &need.scope, &need.operation),
            ));
        }
        if !missing.is_empty() {
            return findings;
        }
        for need in optional {
            findings.push(Finding {
                severity: Severity::Warning,
                sync: sync.name.clone(),
                key: format!("{}.unique_key_property", sync.key),
                message: format!(
                    "{}; until then, unless `{}` exists already, new records are created with journaled creates",
                    crate::auth::missing_scope_message(&sync.name, &need.scope, &need.operation),
                    super::KEY_PROPERTY
                ),
            });
        }
    }
    let meta = match resolve_object(client, sync).await {
        Ok(meta) => meta,
        Err(SyncError::Config { key, message, .. }) => {
            findings.push(error(key, message));
            return findings;
        }
        Err(e) => {
            findings.push(error(format!("{}.hubspot", sync.key), e.describe(&sync.name)));
            return findings;
        }
    };
    for (key, message) in check_mappings(sync, &meta) {
        findings.push(error(key, message));
    }
    for (column, property) in &sync.fields {
        let (Some(col), Some(prop)) = (columns.iter().find(|c| &c.name == column), meta.property(property)) else {
            continue;
        };
        if let Some((severity, message)) = type_fit(col, prop) {
            findings.push(Finding {
                severity,
                sync: sync.name.clone(),
                key: format!("{}.fields.{column}", sync.key),
                message,
            });
        }
    }
    if let Some(finding) = check_write_scope(sync, client, &meta).await {
        findings.push(finding);
    }
    if !sync.associations.is_empty() {
        findings.extend(check_association_labels(config, sync, client, &meta).await);
    }
    if super::unique_key::wanted(sync, &meta) {
        let message = match meta.property(super::KEY_PROPERTY) {
            Some(p) if p.has_unique_value => None,
            Some(_) => Some(format!(
                "{} has a property `{}` that is not unique, so hubsync cannot upsert by it and creates new records \
                 with journaled creates; rename or archive that property",
                sync.object,
                super::KEY_PROPERTY
            )),
            None => Some(format!(
                "the first run creates the unique property `{}` (group `{}`) on {}; it needs {}",
                super::KEY_PROPERTY,
                super::KEY_GROUP,
                sync.object,
                crate::auth::unique_key_scope(sync).map(|n| n.scope).unwrap_or_default()
            )),
        };
        if let Some(message) = message {
            findings.push(Finding {
                severity: Severity::Warning,
                sync: sync.name.clone(),
                key: format!("{}.unique_key_property", sync.key),
                message,
            });
        }
    } else if meta.property(&sync.match_on.property).is_some() && !meta.is_unique(&sync.match_on.property) {
        findings.push(Finding {
            severity: Severity::Warning,
            sync: sync.name.clone(),
            key: format!("{}.match.property", sync.key),
            message: format!(
                "`{}` is not a unique property of {}, so new rows are matched by search (eventually consistent, \
                 5 requests/s) and records sharing a value can be updated as one or duplicated; create a unique \
                 property such as `external_id` (hasUniqueValue: true) and match on it, or (not for contacts) \
                 set `unique_key_property = true` so records not found are upserted by hubsync's own key",
                sync.match_on.property, sync.object
            ),
        });
    }
    findings
}

/// A static token's scopes show only in HubSpot's refusals: an empty batch to the sync's write
/// endpoint is refused with 403 `MISSING_SCOPES` when the token may not write, and writes
/// nothing otherwise. (OAuth tokens were checked against their introspected scopes.)
async fn check_write_scope(sync: &SyncSpec, client: &HubSpotClient, meta: &super::ObjectMeta) -> Option<Finding> {
    if client.settings().oauth.is_some() {
        return None;
    }
    let (op, verb) = match sync.mode {
        SyncMode::Upsert => (WriteOp::Upsert, "upsert"),
        SyncMode::Update => (WriteOp::Update, "update"),
        SyncMode::Create => (WriteOp::Create, "create"),
    };
    let message = match client.probe_write_scope(&meta.path_name, op).await {
        Ok(()) => return None,
        Err(HubSpotError::MissingScopes { scopes, .. }) => {
            let scope = crate::auth::required_scopes(sync)
                .into_iter()
                .find(|n| n.operation == format!("{verb} {}", sync.object))
                .map(|n| n.scope)
                .or_else(|| scopes.first().cloned())
                .unwrap_or_else(|| "a write scope HubSpot did not name".to_string());
            crate::auth::missing_scope_message(&sync.name, &scope, &format!("{verb} {}", sync.object))
        }
        Err(e) => crate::auth::describe_hubspot_error(&sync.name, &e),
    };
    Some(Finding { severity: Severity::Error, sync: sync.name.clone(), key: format!("{}.hubspot", sync.key), message })
}

/// Resolves the association rules and reads the model's association columns to check that
/// every label they use exists between the two objects.
async fn check_association_labels(
    config: &Config,
    sync: &SyncSpec,
    client: &HubSpotClient,
    meta: &super::ObjectMeta,
) -> Vec<Finding> {
    let error =
        |key: String, message: String| Finding { severity: Severity::Error, sync: sync.name.clone(), key, message };
    let rules = match resolve_rules(client, sync, meta).await {
        Ok(rules) => rules,
        Err(SyncError::Config { key, message, .. }) => return vec![error(key, message)],
        Err(e) => return vec![error(format!("{}.associations", sync.key), e.to_string())],
    };
    let read = async {
        let source = connect_source(config, sync).await?;
        let described = source.describe(&sync.name, &sync.model_sql).await?;
        let wanted: Vec<String> = sync.associations.iter().map(|a| a.column.clone()).collect();
        let mut columns = select_columns(&sync.name, &described, &wanted)?;
        for c in &mut columns {
            c.kind = c.kind.for_links();
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<crate::source::Row>>(4);
        let collect = async {
            let mut labels: Vec<BTreeSet<String>> = vec![BTreeSet::new(); wanted.len()];
            while let Some(chunk) = rx.recv().await {
                for row in chunk {
                    for (j, cell) in row.iter().enumerate() {
                        let Some(cell) = cell else { continue };
                        if let Ok(values) = parse_link_cell(cell, false) {
                            labels[j].extend(values.into_iter().flat_map(|v| v.labels));
                        }
                    }
                }
            }
            labels
        };
        let (streamed, labels) = tokio::join!(source.stream(&sync.name, &sync.model_sql, &columns, tx), collect);
        streamed?;
        Ok::<_, SyncError>(labels)
    };
    let labels = match read.await {
        Ok(labels) => labels,
        Err(e) => return vec![error(format!("{}.model", sync.key), e.to_string())],
    };
    let mut findings = Vec::new();
    for (j, (rule, used)) in rules.iter().zip(labels).enumerate() {
        for label in used {
            if rule.types_for(std::slice::from_ref(&label)).is_err() {
                let mut known: Vec<&String> = rule.labels.keys().collect();
                known.sort();
                findings.push(error(
                    format!("{}.associations[{j}].column", sync.key),
                    format!(
                        "association label `{label}` does not exist from {} to {} (labels defined: {})",
                        sync.object,
                        rule.rule.to,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                        }
                    ),
                ));
            }
        }
    }
    findings
}

async fn describe(config: &Config, sync: &SyncSpec) -> Result<Vec<ColumnInfo>, SyncError> {
    let source = connect_source(config, sync).await?;
    Ok(source.describe(&sync.name, &sync.model_sql).await?)
}

/// Whether a column's values can be written to a property: `None` when they fit.
fn type_fit(column: &ColumnInfo, property: &PropertyInfo) -> Option<(Severity, String)> {
    use ValueKind::*;
    let kind = column.kind;
    let what = |expected: &str| {
        format!(
            "column `{}` is {} but property `{}` is a {} property; {expected}",
            column.name, column.type_name, property.name, property.type_
        )
    };
    match property.type_.as_str() {
        "number" => match kind {
            Integer | Decimal | Float => None,
            Text | Json | Other => {
                Some((Severity::Warning, what("every value must be a number or HubSpot rejects the record")))
            }
            _ => Some((Severity::Error, what("map a numeric column"))),
        },
        "bool" => match kind {
            Bool => None,
            Text | Other => Some((Severity::Warning, what("values must be `true` or `false`"))),
            _ => Some((Severity::Error, what("map a boolean column"))),
        },
        "date" => match kind {
            Date => None,
            Text | Other => Some((Severity::Warning, what("values must be dates (YYYY-MM-DD)"))),
            Timestamp | TimestampTz => Some((
                Severity::Error,
                what("HubSpot date properties take midnight UTC only; cast the column to a date"),
            )),
            _ => Some((Severity::Error, what("map a date column"))),
        },
        "datetime" => match kind {
            Date | Timestamp | TimestampTz => None,
            Text | Other => Some((Severity::Warning, what("values must be ISO-8601 datetimes"))),
            _ => Some((Severity::Error, what("map a timestamp column"))),
        },
        "enumeration" => match kind {
            Json => Some((Severity::Error, what("map text or an array of option values"))),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ValueKind) -> ColumnInfo {
        ColumnInfo { name: "c".into(), kind, type_name: format!("{kind:?}").to_lowercase() }
    }

    fn prop(type_: &str) -> PropertyInfo {
        PropertyInfo { name: "p".into(), type_: type_.into(), ..PropertyInfo::default() }
    }

    #[test]
    fn numbers_need_numbers() {
        assert!(type_fit(&col(ValueKind::Integer), &prop("number")).is_none());
        assert_eq!(type_fit(&col(ValueKind::Bool), &prop("number")).unwrap().0, Severity::Error);
        assert_eq!(type_fit(&col(ValueKind::Text), &prop("number")).unwrap().0, Severity::Warning);
    }

    #[test]
    fn dates_must_not_be_timestamps() {
        assert_eq!(type_fit(&col(ValueKind::TimestampTz), &prop("date")).unwrap().0, Severity::Error);
        assert!(type_fit(&col(ValueKind::Date), &prop("datetime")).is_none());
        assert!(type_fit(&col(ValueKind::Array), &prop("string")).is_none());
    }
}
