//! The values the client takes and returns: plain data, no I/O.

use std::collections::BTreeMap;

/// One property definition of an object type (from the properties API).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyInfo {
    pub name: String,
    pub label: String,
    /// HubSpot's `type`: string, number, date, datetime, enumeration, bool, phone_number, ...
    pub type_: String,
    /// HubSpot's `fieldType`: text, textarea, select, checkbox, booleancheckbox, ...
    pub field_type: String,
    /// True for properties usable as an upsert key (`hasUniqueValue`).
    pub has_unique_value: bool,
    /// True when the API cannot write the value (`modificationMetadata.readOnlyValue` or
    /// `calculated`).
    pub read_only_value: bool,
    /// The internal values of an enumeration's options.
    pub options: Vec<String>,
    /// True for HubSpot's own properties, false for the portal's custom ones.
    pub hubspot_defined: bool,
}

/// A property group to create (`PropertyGroupCreate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPropertyGroup {
    /// Internal name: lowercase letters, digits and `_`.
    pub name: String,
    pub label: String,
    /// `-1` shows it after the groups with a positive order.
    pub display_order: i64,
}

/// A property to create (the `PropertyCreate` fields hubsync sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProperty {
    /// Internal name: lowercase letters, digits and `_`.
    pub name: String,
    pub label: String,
    /// Help text shown in HubSpot.
    pub description: String,
    /// HubSpot's `type`, e.g. `string`.
    pub type_: String,
    /// HubSpot's `fieldType`, e.g. `text`.
    pub field_type: String,
    pub group_name: String,
    /// `hasUniqueValue`: can key a batch upsert; cannot be changed once set.
    pub has_unique_value: bool,
    /// Whether the property may be used on HubSpot forms.
    pub form_field: bool,
}

/// One custom object schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// `2-NNN`.
    pub object_type_id: String,
    pub name: String,
    /// `p{portal}_{name}`.
    pub fully_qualified_name: String,
    pub labels_plural: Option<String>,
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteInput {
    /// The caller's key for this input (the model's primary key); every outcome carries it.
    pub trace_id: String,
    /// Upsert: the unique property's value. Update: the HubSpot record id. Create: `None`.
    pub id: Option<String>,
    /// Property values as HubSpot strings; `""` clears a value.
    pub properties: BTreeMap<String, String>,
}

/// What happened to one `WriteInput`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// HubSpot holds the record; `created` is true when this write created it.
    Written { trace_id: String, id: String, created: bool },
    /// HubSpot refused the input (or it was never sent); `code` is HubSpot's code
    /// (`INVALID_EMAIL`, `PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`, `CONFLICT`,
    /// `OBJECT_NOT_FOUND`, or the error category) or one of the client's own codes listed in
    /// `outcome_codes`.
    Rejected { trace_id: String, code: String, message: String },
}

impl WriteOutcome {
    pub fn trace_id(&self) -> &str {
        match self {
            WriteOutcome::Written { trace_id, .. } | WriteOutcome::Rejected { trace_id, .. } => trace_id,
        }
    }

    pub fn is_written(&self) -> bool {
        matches!(self, WriteOutcome::Written { .. })
    }

    /// The rejection code, if rejected.
    pub fn code(&self) -> Option<&str> {
        match self {
            WriteOutcome::Written { .. } => None,
            WriteOutcome::Rejected { code, .. } => Some(code),
        }
    }
}

/// The client's own outcome codes (besides HubSpot's).
pub mod outcome_codes {
    /// An earlier input of the same call had the same id; only the last one was sent.
    pub const DUPLICATE_IN_BATCH: &str = "DUPLICATE_IN_BATCH";
    /// Upsert or update without an id; association without a from or to id.
    pub const MISSING_ID: &str = "MISSING_ID";
    /// An input the client can tell HubSpot would refuse (an association without a type).
    pub const INVALID_INPUT: &str = "INVALID_INPUT";
    /// A create may or may not have reached HubSpot (timeout or dropped connection after
    /// sending); it was not sent again. Look the record up before creating it again.
    pub const DELIVERY_UNCERTAIN: &str = "DELIVERY_UNCERTAIN";
    /// HubSpot acknowledged the batch without a result or an error for this input.
    pub const NO_RESULT: &str = "NO_RESULT";
}

/// One association label (or unlabeled type) between two object types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationLabel {
    /// `HUBSPOT_DEFINED`, `USER_DEFINED` or `INTEGRATOR_DEFINED`.
    pub category: String,
    pub type_id: u32,
    /// `None` for the unlabeled default type.
    pub label: Option<String>,
}

/// One association to create between two records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationInput {
    /// The caller's key for this input; every outcome carries it.
    pub trace: String,
    pub from_id: String,
    pub to_id: String,
    /// `(category, type id)` pairs, e.g. `("HUBSPOT_DEFINED", 279)`.
    pub types: Vec<(String, u32)>,
}

/// What happened to one `AssociationInput`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssocOutcome {
    Associated { trace: String },
    Rejected { trace: String, code: String, message: String },
}

impl AssocOutcome {
    pub fn trace(&self) -> &str {
        match self {
            AssocOutcome::Associated { trace } | AssocOutcome::Rejected { trace, .. } => trace,
        }
    }

    pub fn is_associated(&self) -> bool {
        matches!(self, AssocOutcome::Associated { .. })
    }
}

/// One list (lists v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInfo {
    /// The ILS list id.
    pub list_id: String,
    pub name: String,
    pub object_type_id: String,
    /// `MANUAL`, `DYNAMIC` or `SNAPSHOT`.
    pub processing_type: String,
    pub size: Option<u64>,
}

/// What one membership add or remove changed, summed over its requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Record ids HubSpot does not know; it ignores them.
    pub missing: Vec<String>,
}
