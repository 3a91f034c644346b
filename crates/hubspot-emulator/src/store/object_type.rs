//! One object type: its property definitions, its records and their unique-value index, the
//! check of property writes, the properties HubSpot maintains on records, and merges.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::hash::FastMap;
use super::properties::{PropertyDef, ValueError};
use super::property_defaults;
use super::record::{CustomSchema, EmRecord, Record};
use super::record_json::{RecordJson, Selection};
use crate::clock;

/// One object type with its properties and records.
pub(crate) struct ObjectType {
    pub type_id: String,
    /// `https://app.hubspot.com/contacts/{portal}/record/{type_id}/`: a record's `url` is this
    /// plus its id (recorded real HubSpot answers, docs/emulator.md).
    url_prefix: String,
    /// The plural API name (`contacts`), or a custom object's name.
    pub name: String,
    /// The singular name (`contact`), or a custom object's name.
    pub singular: String,
    pub schema: Option<CustomSchema>,
    properties: Vec<PropertyDef>,
    prop_index: FastMap<Arc<str>, usize>,
    pub records: BTreeMap<u64, Record>,
    /// Unique property -> stored value (lowercase for email) -> record id.
    unique: FastMap<Arc<str>, FastMap<String, u64>>,
    /// Merged-away record id -> the record it was merged into.
    merged: FastMap<u64, u64>,
    /// Property groups created through the API, by name (groups that only exist because a
    /// property names them are listed from the properties).
    groups: BTreeMap<String, PropertyGroup>,
}

/// A property group created through the properties API.
#[derive(Debug, Clone)]
pub(crate) struct PropertyGroup {
    pub label: String,
    pub display_order: i64,
}

/// Property writes as a request names them: `None` is a JSON `null`.
pub(crate) type PropInput<'a> = Vec<(Cow<'a, str>, Option<Cow<'a, str>>)>;

/// Why two records cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MergeError {
    /// This id names no live record of the type.
    NotFound(u64),
    /// Both ids are the same record.
    SameRecord,
}

/// A property error on one input, as listed in "Property values were not valid: [...]".
#[derive(Debug, Clone)]
pub(crate) struct PropError {
    pub name: String,
    pub code: &'static str,
    pub message: String,
    /// `PROPERTY_DOESNT_EXIST` entries carry `localizedErrorMessage` and `portalId`.
    pub doesnt_exist: bool,
}

/// Checked property writes, ready to apply.
#[derive(Debug, Default)]
pub(crate) struct Changes(pub Vec<(Arc<str>, String)>);

/// A unique value already held by another record.
#[derive(Debug)]
pub(crate) struct UniqueConflict {
    pub property: Arc<str>,
    pub value: String,
    pub existing_id: u64,
}

impl ObjectType {
    pub(super) fn new(
        portal_id: u64,
        type_id: &str,
        name: &str,
        singular: &str,
        schema: Option<CustomSchema>,
        props: Vec<PropertyDef>,
    ) -> Self {
        let mut t = ObjectType {
            type_id: type_id.to_string(),
            url_prefix: format!("https://app.hubspot.com/contacts/{portal_id}/record/{type_id}/"),
            name: name.to_string(),
            singular: singular.to_string(),
            schema,
            properties: Vec::new(),
            prop_index: FastMap::default(),
            records: BTreeMap::new(),
            unique: FastMap::default(),
            merged: FastMap::default(),
            groups: BTreeMap::new(),
        };
        for p in props {
            t.add_property(p);
        }
        if type_id == "0-1" {
            t.unique.entry(Arc::from("email")).or_default();
        }
        t
    }

    /// Drops a custom type's schema and every record (the schema was deleted).
    pub(super) fn forget_schema(&mut self) {
        self.schema = None;
        self.records.clear();
        self.unique.clear();
    }

    pub(crate) fn is_custom(&self) -> bool {
        self.schema.is_some()
    }

    pub(crate) fn is_contact(&self) -> bool {
        self.type_id == "0-1"
    }

    /// `CONTACT`, `COMPANY`, ... as HubSpot names the type in messages.
    pub(crate) fn upper_name(&self) -> String {
        self.singular.to_ascii_uppercase()
    }

    pub(crate) fn properties(&self) -> impl Iterator<Item = &PropertyDef> {
        self.properties.iter()
    }

    pub(crate) fn property(&self, name: &str) -> Option<&PropertyDef> {
        self.prop_index.get(name).map(|i| &self.properties[*i]).filter(|p| !p.archived)
    }

    pub(crate) fn property_mut(&mut self, name: &str) -> Option<&mut PropertyDef> {
        let i = *self.prop_index.get(name)?;
        Some(&mut self.properties[i])
    }

    /// Every property group: those created through the API and those the properties name,
    /// by name, with (label, display order).
    pub(crate) fn groups(&self) -> BTreeMap<String, PropertyGroup> {
        let mut all: BTreeMap<String, PropertyGroup> = BTreeMap::new();
        for p in self.properties.iter().filter(|p| !p.archived) {
            all.entry(p.group_name.clone())
                .or_insert_with(|| PropertyGroup { label: p.group_name.clone(), display_order: -1 });
        }
        all.extend(self.groups.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    /// Adds a property group; false when one of that name exists.
    pub(crate) fn add_group(&mut self, name: &str, group: PropertyGroup) -> bool {
        if self.groups().contains_key(name) {
            return false;
        }
        self.groups.insert(name.to_string(), group);
        true
    }

    /// Adds (or revives) a property definition; a unique one gets its value index.
    pub(crate) fn add_property(&mut self, p: PropertyDef) {
        if p.has_unique_value {
            let index = self.build_unique_index(&p.name);
            self.unique.insert(p.name.clone(), index);
        }
        match self.prop_index.get(&p.name) {
            Some(i) => self.properties[*i] = p,
            None => {
                self.prop_index.insert(p.name.clone(), self.properties.len());
                self.properties.push(p);
            }
        }
    }

    fn build_unique_index(&self, name: &str) -> FastMap<String, u64> {
        self.records
            .values()
            .filter(|r| !r.archived)
            .filter_map(|r| r.get(name).map(|v| (v.to_string(), r.id)))
            .collect()
    }

    /// Archives a property definition; its values stay on records but are no longer read.
    pub(crate) fn archive_property(&mut self, name: &str, now: i64) {
        if let Some(p) = self.property_mut(name) {
            p.archived = true;
            p.updated_at = now;
        }
        if !(self.is_contact() && name == "email") {
            self.unique.remove(name);
        }
    }

    pub(crate) fn unique_count(&self) -> usize {
        self.properties.iter().filter(|p| p.has_unique_value && !p.archived).count()
    }

    /// Whether `name` may key an upsert or an `idProperty` lookup: contact `email` or a
    /// `hasUniqueValue` property.
    pub(crate) fn is_unique_key(&self, name: &str) -> bool {
        (self.is_contact() && name == "email") || self.property(name).is_some_and(|p| p.has_unique_value)
    }

    /// The form a unique value is indexed under (emails lowercased).
    pub(crate) fn unique_key<'v>(&self, name: &str, value: &'v str) -> Cow<'v, str> {
        if self.is_contact() && name == "email" {
            let trimmed = value.trim();
            if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(trimmed.to_ascii_lowercase())
            } else {
                Cow::Borrowed(trimmed)
            }
        } else {
            Cow::Borrowed(value)
        }
    }

    /// The live record whose unique property `name` holds `value`.
    pub(crate) fn find_unique(&self, name: &str, value: &str) -> Option<u64> {
        self.unique.get(name)?.get(&*self.unique_key(name, value)).copied()
    }

    /// The live record under an already normalized unique key (see `unique_key`).
    pub(crate) fn find_key(&self, name: &str, key: &str) -> Option<u64> {
        self.unique.get(name)?.get(key).copied()
    }

    pub(crate) fn live(&self, id: u64) -> Option<&Record> {
        self.records.get(&id).filter(|r| !r.archived)
    }

    /// The live record a merged-away record id now stands for, following merges of merges.
    pub(crate) fn survivor_of(&self, id: u64) -> Option<u64> {
        let mut current = *self.merged.get(&id)?;
        // A merge chain cannot loop (a survivor is live, a merged-away id is not); the bound
        // only keeps a bug from hanging the server.
        for _ in 0..1_000 {
            match self.merged.get(&current) {
                Some(next) => current = *next,
                None => break,
            }
        }
        self.live(current).map(|r| r.id)
    }

    /// Whether `id` is a record id that was merged into another record.
    pub(crate) fn is_merged_away(&self, id: &str) -> bool {
        id.trim().parse::<u64>().is_ok_and(|id| self.merged.contains_key(&id))
    }

    /// A record's JSON with no trace id and no `new` flag; set those with struct update.
    pub(crate) fn json<'a>(&'a self, record: &'a Record, selection: &'a Selection<'a>) -> RecordJson<'a> {
        RecordJson { record, selection, trace_id: None, new: None, url_prefix: &self.url_prefix }
    }

    /// Resolves an input id: a record id, or with `id_property` a unique property's value.
    pub(crate) fn resolve_id(&self, id: &str, id_property: Option<&str>) -> Option<u64> {
        match id_property {
            Some(p) if p != "hs_object_id" => self.find_unique(p, id),
            _ => id.trim().parse().ok().filter(|id| self.live(*id).is_some()),
        }
    }

    /// Checks property writes against the definitions: unknown and read-only properties and
    /// bad values are refused, the rest normalized (emails lowercased, dates as HubSpot
    /// stores them). `current` is the record being updated.
    ///
    /// A `null` for a property the portal does not have is ignored, as HubSpot does
    /// (recorded real HubSpot answers, docs/emulator.md); a `null` for a known one clears it, like `""`.
    pub(crate) fn check(&self, input: PropInput<'_>, current: Option<&Record>) -> Result<Changes, Vec<PropError>> {
        let mut changes = Vec::with_capacity(input.len());
        let mut errors = Vec::new();
        for (name, raw) in input {
            let Some(def) = self.property(&name) else {
                if raw.is_none() {
                    continue;
                }
                errors.push(PropError {
                    code: "PROPERTY_DOESNT_EXIST",
                    message: format!("Property \"{name}\" does not exist"),
                    name: name.into_owned(),
                    doesnt_exist: true,
                });
                continue;
            };
            if def.read_only {
                errors.push(PropError {
                    code: "READ_ONLY_VALUE",
                    message: format!("\"{name}\" is a read only property; its value cannot be set."),
                    name: name.into_owned(),
                    doesnt_exist: false,
                });
                continue;
            }
            let raw = raw.unwrap_or(Cow::Borrowed(""));
            let existing = current.and_then(|r| r.get(&name));
            // Keep the string already owned when the value is stored as written.
            let normalized = def.normalize(&raw, existing, self.is_contact() && name == "email").map(|v| match v {
                Cow::Borrowed(_) => None,
                Cow::Owned(v) => Some(v),
            });
            // A value equal to the stored one is no change.
            match normalized {
                Ok(None) if existing.unwrap_or_default() == raw && current.is_some() => {}
                Ok(Some(value)) if existing.unwrap_or_default() == value && current.is_some() => {}
                Ok(None) => changes.push((def.name.clone(), raw.into_owned())),
                Ok(Some(value)) => changes.push((def.name.clone(), value)),
                Err(ValueError { code, message }) => {
                    errors.push(PropError { name: name.into_owned(), code, message, doesnt_exist: false })
                }
            }
        }
        if errors.is_empty() {
            Ok(Changes(changes))
        } else {
            Err(errors)
        }
    }

    /// The known properties an input writes as `null`, for the write answer to echo.
    pub(crate) fn written_nulls(&self, input: &PropInput<'_>) -> Vec<Arc<str>> {
        input
            .iter()
            .filter(|(_, v)| v.is_none())
            .filter_map(|(n, _)| self.property(n).map(|p| p.name.clone()))
            .collect()
    }

    /// The first unique value in `changes` already held by a record other than `except`.
    pub(crate) fn conflict(&self, changes: &Changes, except: Option<u64>) -> Option<UniqueConflict> {
        changes.0.iter().filter(|(_, v)| !v.is_empty()).find_map(|(name, value)| {
            let existing_id = self.unique.get(name)?.get(&*self.unique_key(name, value)).copied()?;
            (Some(existing_id) != except).then(|| UniqueConflict {
                property: name.clone(),
                value: value.clone(),
                existing_id,
            })
        })
    }

    /// Sets the read-only properties HubSpot maintains on every record (recorded real HubSpot answers, docs/emulator.md):
    /// ids, dates and source on create, the modify date on every write, and the values
    /// derived from others. Only properties the type defines are set.
    fn maintain(&self, props: &mut BTreeMap<Arc<str>, String>, id: u64, now: i64, created: bool) {
        for (name, value) in system_values(&self.type_id, props, id, now, created) {
            let Some(def) = self.property(name) else { continue };
            match value {
                Some(v) if !v.is_empty() => {
                    props.insert(def.name.clone(), v);
                }
                _ => {
                    props.remove(name);
                }
            }
        }
    }

    /// The values a record holds for the unique properties, to re-index after a write.
    fn unique_values(
        unique: &FastMap<Arc<str>, FastMap<String, u64>>,
        props: &BTreeMap<Arc<str>, String>,
    ) -> Vec<(Arc<str>, Option<String>)> {
        unique.keys().map(|name| (name.clone(), props.get(name).cloned())).collect()
    }

    fn reindex(&mut self, id: u64, before: &[(Arc<str>, Option<String>)], after: &[(Arc<str>, Option<String>)]) {
        let contact = self.is_contact();
        for ((name, old), (_, new)) in before.iter().zip(after) {
            if old == new {
                continue;
            }
            let key =
                |v: &str| if contact && &**name == "email" { v.trim().to_ascii_lowercase() } else { v.to_string() };
            let Some(index) = self.unique.get_mut(name) else { continue };
            if let Some(v) = old {
                let k = key(v);
                if index.get(&k) == Some(&id) {
                    index.remove(&k);
                }
            }
            if let Some(v) = new {
                index.insert(key(v), id);
            }
        }
    }

    /// Stores a new record. The caller has checked conflicts.
    pub(crate) fn create(&mut self, id: u64, changes: Changes, now: i64, lag_ms: i64) -> &Record {
        let mut props = BTreeMap::new();
        for (name, value) in changes.0 {
            if !value.is_empty() {
                props.insert(name, value);
            }
        }
        self.maintain(&mut props, id, now, true);
        let contact = self.is_contact();
        for (name, index) in self.unique.iter_mut() {
            if let Some(v) = props.get(name) {
                let key = if contact && &**name == "email" { v.trim().to_ascii_lowercase() } else { v.clone() };
                index.insert(key, id);
            }
        }
        let record = Record {
            id,
            props,
            created_at: now,
            updated_at: now,
            archived: false,
            indexed_at: now.saturating_add(lag_ms),
            stale: None,
        };
        self.records.entry(id).or_insert(record)
    }

    /// Applies writes to a live record. The caller has checked conflicts.
    pub(crate) fn update(&mut self, id: u64, changes: Changes, now: i64, lag_ms: i64) -> Option<&Record> {
        let record = self.records.get_mut(&id).filter(|r| !r.archived)?;
        // Re-index only when a unique property is written.
        let reindex = changes.0.iter().any(|(name, _)| self.unique.contains_key(name));
        let before = if reindex { Self::unique_values(&self.unique, &record.props) } else { Vec::new() };
        if lag_ms > 0 && now >= record.indexed_at {
            record.stale = Some(record.props.clone());
        }
        for (name, value) in changes.0 {
            if value.is_empty() {
                record.props.remove(&name);
            } else {
                record.props.insert(name, value);
            }
        }
        record.updated_at = now;
        if lag_ms > 0 {
            record.indexed_at = now.saturating_add(lag_ms);
        }
        let mut props = std::mem::take(&mut record.props);
        self.maintain(&mut props, id, now, false);
        let record = self.records.get_mut(&id)?;
        record.props = props;
        if reindex {
            let after = Self::unique_values(&self.unique, &record.props);
            self.reindex(id, &before, &after);
        }
        self.records.get(&id)
    }

    /// Moves a record to the recycle bin; its unique values become free.
    pub(crate) fn archive(&mut self, id: u64, now: i64) -> bool {
        let Some(record) = self.records.get_mut(&id).filter(|r| !r.archived) else { return false };
        record.archived = true;
        record.updated_at = now;
        let before = Self::unique_values(&self.unique, &record.props);
        let after: Vec<_> = before.iter().map(|(n, _)| (n.clone(), None)).collect();
        self.reindex(id, &before, &after);
        true
    }

    /// Merges record `merged` into `primary` (HubSpot docs: CRM objects; sources in docs/emulator.md): the survivor keeps
    /// its values, takes the merged-away record's values for properties it has no value
    /// for, and lists the merged-away id in `hs_merged_object_ids` (contacts: also in
    /// `hs_all_contact_vids`). The merged-away record is gone; its id stands for the survivor
    /// from now on (see `survivor_of`). The caller moves associations.
    pub(crate) fn merge(&mut self, primary: u64, merged: u64, now: i64, lag_ms: i64) -> Result<(), MergeError> {
        if primary == merged {
            return Err(MergeError::SameRecord);
        }
        let kept = self.live(primary).ok_or(MergeError::NotFound(primary))?;
        self.live(merged).ok_or(MergeError::NotFound(merged))?;
        let kept_props = kept.props.clone();
        // Free the merged-away record's unique values before the survivor takes any of them.
        let gone = self.records.remove(&merged).ok_or(MergeError::NotFound(merged))?;
        let before = Self::unique_values(&self.unique, &gone.props);
        let after: Vec<_> = before.iter().map(|(n, _)| (n.clone(), None)).collect();
        self.reindex(merged, &before, &after);
        let mut changes: Vec<(Arc<str>, String)> = gone
            .props
            .iter()
            .filter(|(name, _)| !kept_props.contains_key(*name))
            .filter(|(name, _)| self.property(name).is_some_and(|p| !p.read_only))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let joined = |name: &str, first: String| {
            let mut ids: Vec<String> = vec![first];
            for props in [&kept_props, &gone.props] {
                ids.extend(props.get(name).into_iter().flat_map(|v| v.split(';')).map(String::from));
            }
            ids.retain(|v| !v.is_empty());
            ids.dedup();
            ids
        };
        if let Some(p) = self.property("hs_merged_object_ids") {
            let mut ids = joined("hs_merged_object_ids", merged.to_string());
            ids.sort();
            ids.dedup();
            changes.push((p.name.clone(), ids.join(";")));
        }
        if let Some(p) = self.property("hs_all_contact_vids") {
            let mut ids = joined("hs_all_contact_vids", primary.to_string());
            ids.push(merged.to_string());
            ids.sort();
            ids.dedup();
            changes.push((p.name.clone(), ids.join(";")));
        }
        for target in self.merged.values_mut().filter(|t| **t == merged) {
            *target = primary;
        }
        self.merged.insert(merged, primary);
        self.update(primary, Changes(changes), now, lag_ms);
        Ok(())
    }

    /// The property names a read returns: the requested ones HubSpot knows plus the ones it
    /// always adds, or the type's defaults when none were requested.
    pub(crate) fn read_selection(&self, requested: &[String]) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = if requested.is_empty() {
            property_defaults::default_read_properties(&self.type_id)
                .iter()
                .filter_map(|n| self.property(n).map(|p| p.name.clone()))
                .collect()
        } else {
            let always = property_defaults::always_read_properties(&self.type_id);
            requested
                .iter()
                .map(String::as_str)
                .chain(always.iter().copied())
                .filter_map(|n| self.property(n).map(|p| p.name.clone()))
                .collect()
        };
        names.sort();
        names.dedup();
        names
    }

    pub(crate) fn to_em_record(&self, r: &Record) -> EmRecord {
        EmRecord {
            id: r.id.to_string(),
            properties: r.props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            created_at: clock::iso_millis(r.created_at),
            updated_at: clock::iso_millis(r.updated_at),
            archived: r.archived,
        }
    }

    pub(crate) fn schema_json(&self, portal_id: u64, associations: Vec<Value>) -> Value {
        let Some(s) = &self.schema else { return Value::Null };
        serde_json::json!({
            "id": s.id,
            "objectTypeId": self.type_id,
            "fullyQualifiedName": s.fully_qualified_name,
            "name": s.name,
            "labels": s.labels,
            "portalId": portal_id,
            "properties": self.properties.iter().filter(|p| !p.archived).map(PropertyDef::to_json).collect::<Vec<_>>(),
            "associations": associations,
            "requiredProperties": s.required_properties,
            "searchableProperties": s.searchable_properties,
            "primaryDisplayProperty": s.primary_display_property,
            "secondaryDisplayProperties": s.secondary_display_properties,
            "createdAt": clock::iso_millis(s.created_at),
            "updatedAt": clock::iso_millis(s.updated_at),
            "archived": false,
        })
    }
}

/// The read-only values HubSpot maintains on a record after a write (recorded real HubSpot answers, docs/emulator.md):
/// `(name, value)`, `None` to clear. `props` holds the record's values after the write.
/// Names the type does not define are skipped by the caller.
fn system_values(
    type_id: &str,
    props: &BTreeMap<Arc<str>, String>,
    id: u64,
    now: i64,
    created: bool,
) -> Vec<(&'static str, Option<String>)> {
    let stamp = clock::iso_millis(now);
    let get = |name: &str| props.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let mut out: Vec<(&'static str, Option<String>)> = Vec::with_capacity(12);
    if created {
        out.push(("hs_object_id", Some(id.to_string())));
        out.push((property_defaults::created_property(type_id), Some(stamp.clone())));
        if type_id == "0-3" {
            out.push(("hs_createdate", Some(stamp.clone())));
        }
        out.push(("hs_object_source", Some(property_defaults::OBJECT_SOURCE.to_string())));
        out.push(("hs_object_source_id", Some(property_defaults::OBJECT_SOURCE_ID.to_string())));
        out.push(("hs_object_source_label", Some(property_defaults::OBJECT_SOURCE.to_string())));
        match type_id {
            "0-1" => {
                out.push(("hs_all_contact_vids", Some(id.to_string())));
                out.push(("hs_is_contact", Some("true".to_string())));
            }
            "0-2" => out.push(("num_associated_contacts", Some("0".to_string()))),
            _ => {}
        }
        // A contact or company created without a lifecycle stage starts as a lead.
        if matches!(type_id, "0-1" | "0-2") && get("lifecyclestage").is_none() {
            out.push(("lifecyclestage", Some("lead".to_string())));
        }
    }
    out.push((property_defaults::last_modified_property(type_id), Some(stamp)));
    match type_id {
        "0-1" => {
            out.push(("hs_email_domain", get("email").and_then(|e| e.split_once('@')).map(|(_, d)| d.to_string())))
        }
        "0-2" => {
            if let (None, Some(domain)) = (get("website"), get("domain")) {
                out.push(("website", Some(domain.to_string())));
            }
        }
        "0-3" => {
            let closed = get("dealstage").is_some_and(|s| s == "closedwon" || s == "closedlost");
            out.push(("hs_is_closed", Some(closed.to_string())));
            out.push(("amount_in_home_currency", get("amount").map(String::from)));
            let created_ms = get("createdate").and_then(clock::parse_datetime).unwrap_or(now);
            let days = get("closedate")
                .and_then(clock::parse_datetime)
                .map(|close| (close - created_ms).div_euclid(86_400_000).max(0))
                .unwrap_or(0);
            out.push(("days_to_close", Some(days.to_string())));
        }
        _ => {}
    }
    out
}
