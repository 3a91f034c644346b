//! Property definitions: what one is, the JSON the properties API returns for one, the check
//! of a new definition, and the check of a written value against its definition
//! (HubSpot docs: error handling, properties; sources in docs/emulator.md). The standard objects' default
//! properties (data) are in `property_defaults.rs`.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::{self, DateProblem};

/// The `type` of a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropType {
    String,
    Number,
    Bool,
    Enumeration,
    Date,
    DateTime,
    PhoneNumber,
    Json,
    ObjectCoordinates,
}

impl PropType {
    pub(crate) fn parse(s: &str) -> Option<PropType> {
        Some(match s {
            "string" => PropType::String,
            "number" => PropType::Number,
            "bool" => PropType::Bool,
            "enumeration" => PropType::Enumeration,
            "date" => PropType::Date,
            "datetime" => PropType::DateTime,
            "phone_number" => PropType::PhoneNumber,
            "json" => PropType::Json,
            "object_coordinates" => PropType::ObjectCoordinates,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::Number => "number",
            PropType::Bool => "bool",
            PropType::Enumeration => "enumeration",
            PropType::Date => "date",
            PropType::DateTime => "datetime",
            PropType::PhoneNumber => "phone_number",
            PropType::Json => "json",
            PropType::ObjectCoordinates => "object_coordinates",
        }
    }

    /// The `fieldType`s HubSpot allows for this type (properties guide).
    pub(crate) fn allows_field_type(self, field_type: &str) -> bool {
        match self {
            PropType::Bool => matches!(field_type, "booleancheckbox" | "calculation_equation"),
            PropType::Enumeration => {
                matches!(field_type, "booleancheckbox" | "checkbox" | "radio" | "select" | "calculation_equation")
            }
            PropType::Date | PropType::DateTime => field_type == "date",
            PropType::String => {
                matches!(field_type, "file" | "text" | "textarea" | "calculation_equation" | "html" | "phonenumber")
            }
            PropType::Number => matches!(field_type, "number" | "calculation_equation"),
            PropType::PhoneNumber => matches!(field_type, "phonenumber" | "text"),
            PropType::Json | PropType::ObjectCoordinates => true,
        }
    }
}

/// One option of an enumeration property.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PropOption {
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub hidden: bool,
}

impl PropOption {
    fn to_json(&self) -> Value {
        json!({
            "label": self.label,
            "value": self.value,
            "description": self.description,
            "displayOrder": self.display_order,
            "hidden": self.hidden,
        })
    }
}

/// A property as the portal defines it.
#[derive(Clone, Debug)]
pub(crate) struct PropertyDef {
    pub name: Arc<str>,
    pub label: String,
    pub ptype: PropType,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<PropOption>,
    pub has_unique_value: bool,
    /// `modificationMetadata.readOnlyValue`: the API refuses writes.
    pub read_only: bool,
    pub hubspot_defined: bool,
    pub hidden: bool,
    pub form_field: bool,
    pub display_order: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived: bool,
}

/// Why a written value was refused: HubSpot's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueError {
    pub code: &'static str,
    pub message: String,
}

const MAX_STRING_CHARS: usize = 65_536;
/// The user id the emulator reports for writes made through the API (`createdUserId`,
/// lists' `createdById`).
pub(crate) const API_USER_ID: &str = "1";

impl PropertyDef {
    /// The `Property` JSON the properties API returns.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "updatedAt": clock::iso_millis(self.updated_at),
            "createdAt": clock::iso_millis(self.created_at),
            "name": &*self.name,
            "label": self.label,
            "type": self.ptype.as_str(),
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options.iter().map(PropOption::to_json).collect::<Vec<_>>(),
            "displayOrder": self.display_order,
            "calculated": false,
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": self.form_field,
            "dataSensitivity": "non_sensitive",
        });
        if self.hubspot_defined {
            v["hubspotDefined"] = json!(true);
        } else {
            // Properties created through the API name the user behind the app (§9.1).
            v["createdUserId"] = json!(API_USER_ID);
            v["updatedUserId"] = json!(API_USER_ID);
        }
        if self.archived {
            v["archived"] = json!(true);
            v["archivedAt"] = json!(clock::iso_millis(self.updated_at));
        } else {
            v["archived"] = json!(false);
        }
        v
    }

    fn allowed_labels(&self) -> String {
        if self.options.is_empty() && self.ptype == PropType::Bool {
            return "true, false".to_string();
        }
        self.options.iter().map(|o| o.label.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn has_option(&self, value: &str) -> bool {
        self.options.iter().any(|o| o.value == value)
    }

    fn invalid_option(&self, value: &str) -> ValueError {
        ValueError {
            code: "INVALID_OPTION",
            message: format!("{value} was not one of the allowed options: [{}]", self.allowed_labels()),
        }
    }

    /// Checks a written value and returns it as stored; `Cow::Borrowed` means "exactly as
    /// written", so the caller can keep the string it already owns. `""` clears the property.
    /// `current` is the record's value, for multi-checkbox appends (a leading `;`).
    pub(crate) fn normalize<'a>(
        &self,
        raw: &'a str,
        current: Option<&str>,
        is_contact_email: bool,
    ) -> Result<Cow<'a, str>, ValueError> {
        if raw.is_empty() {
            return Ok(Cow::Borrowed(raw));
        }
        match self.ptype {
            PropType::String | PropType::PhoneNumber => {
                if is_contact_email {
                    let email = raw.trim();
                    if !is_valid_email(email) {
                        return Err(ValueError {
                            code: "INVALID_EMAIL",
                            message: format!("Email address {raw} is invalid"),
                        });
                    }
                    if email.len() == raw.len() && !email.bytes().any(|b| b.is_ascii_uppercase()) {
                        return Ok(Cow::Borrowed(raw));
                    }
                    return Ok(Cow::Owned(email.to_ascii_lowercase()));
                }
                if raw.len() > MAX_STRING_CHARS && raw.chars().count() > MAX_STRING_CHARS {
                    return Err(ValueError {
                        code: "INVALID_STRING",
                        message: format!(
                            "Property \"{}\" value is longer than {MAX_STRING_CHARS} characters",
                            self.name
                        ),
                    });
                }
                Ok(Cow::Borrowed(raw))
            }
            PropType::Number => {
                let v = raw.trim();
                match v.parse::<f64>() {
                    Ok(n) if n.is_finite() && v.len() == raw.len() => Ok(Cow::Borrowed(raw)),
                    Ok(n) if n.is_finite() => Ok(Cow::Owned(v.to_string())),
                    _ => Err(invalid_number(raw)),
                }
            }
            PropType::Bool => match raw {
                "true" | "false" => Ok(Cow::Borrowed(raw)),
                _ => match raw.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(Cow::Owned("true".into())),
                    "false" => Ok(Cow::Owned("false".into())),
                    _ => Err(self.invalid_option(raw)),
                },
            },
            PropType::Enumeration if self.field_type == "checkbox" => {
                let (append, list) = match raw.strip_prefix(';') {
                    Some(rest) => (true, rest),
                    None => (false, raw),
                };
                let mut values: Vec<&str> = Vec::new();
                if append {
                    values.extend(current.unwrap_or_default().split(';').filter(|v| !v.is_empty()));
                }
                for part in list.split(';').filter(|v| !v.is_empty()) {
                    if !self.has_option(part) {
                        return Err(self.invalid_option(part));
                    }
                    if !values.contains(&part) {
                        values.push(part);
                    }
                }
                Ok(Cow::Owned(values.join(";")))
            }
            PropType::Enumeration => {
                if self.has_option(raw) {
                    Ok(Cow::Borrowed(raw))
                } else {
                    Err(self.invalid_option(raw))
                }
            }
            PropType::Date => match clock::parse_date(raw) {
                Ok(d) => Ok(Cow::Owned(d.format("%Y-%m-%d").to_string())),
                Err(DateProblem::NotMidnight(at)) => {
                    Err(ValueError { code: "INVALID_DATE", message: format!("{raw} is at {at} UTC, not midnight!") })
                }
                Err(DateProblem::Unparsable) => Err(invalid_long(raw)),
            },
            PropType::DateTime => match clock::parse_datetime(raw) {
                Some(ms) => Ok(Cow::Owned(clock::iso_millis(ms))),
                None => Err(invalid_long(raw)),
            },
            PropType::Json | PropType::ObjectCoordinates => Ok(Cow::Borrowed(raw)),
        }
    }
}

/// A number property given a non-number: `INVALID_INTEGER`, "... was not a valid number."
/// (recorded real HubSpot answers, docs/emulator.md; dates and datetimes keep `INVALID_LONG`).
fn invalid_number(raw: &str) -> ValueError {
    ValueError { code: "INVALID_INTEGER", message: format!("{raw} was not a valid number.") }
}

fn invalid_long(raw: &str) -> ValueError {
    ValueError { code: "INVALID_LONG", message: format!("{raw} was not a valid long.") }
}

/// A plausible address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub(crate) fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    if local.is_empty() || domain.contains('@') || s.chars().any(char::is_whitespace) {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

/// A property name HubSpot accepts: lowercase letters, digits and underscores, starting with
/// a letter.
pub(crate) fn is_valid_property_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The body of `POST /crm/v3/properties/{objectType}` (`PropertyCreate`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PropertyCreate {
    pub name: Option<String>,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub ptype: Option<String>,
    pub field_type: Option<String>,
    pub group_name: Option<String>,
    pub description: Option<String>,
    pub options: Option<Vec<PropOption>>,
    pub has_unique_value: Option<bool>,
    pub hidden: Option<bool>,
    pub form_field: Option<bool>,
    pub display_order: Option<i64>,
}

impl PropertyCreate {
    /// Checks the definition and makes it; `Err` carries the 400 message.
    pub(crate) fn build(self, now: i64, default_group: &str, defaults: bool) -> Result<PropertyDef, String> {
        // Custom object schemas default properties to string/text (schemas guide).
        let (ptype, field_type) = if defaults {
            (self.ptype.or(Some("string".into())), self.field_type.or(Some("text".into())))
        } else {
            (self.ptype, self.field_type)
        };
        let group_name = if defaults { self.group_name.or(Some(default_group.into())) } else { self.group_name };
        let label = if defaults { self.label.or_else(|| self.name.clone()) } else { self.label };
        let mut missing = Vec::new();
        for (field, value) in [
            ("name", &self.name),
            ("label", &label),
            ("type", &ptype),
            ("fieldType", &field_type),
            ("groupName", &group_name),
        ] {
            if value.as_deref().is_none_or(str::is_empty) {
                missing.push(field);
            }
        }
        if !missing.is_empty() {
            return Err(format!("Missing required property definition fields: {}", missing.join(", ")));
        }
        let name = self.name.unwrap_or_default();
        if !is_valid_property_name(&name) {
            return Err(format!(
                "Property name {name} is invalid: use lowercase letters, numbers and underscores, starting with a letter"
            ));
        }
        let type_name = ptype.unwrap_or_default();
        let field_type = field_type.unwrap_or_default();
        let Some(ptype) = PropType::parse(&type_name) else {
            return Err(format!("{type_name} is not a valid property type"));
        };
        if !ptype.allows_field_type(&field_type) {
            return Err(format!("fieldType {field_type} is not valid for a property of type {type_name}"));
        }
        let mut options = self.options.unwrap_or_default();
        if ptype == PropType::Bool && options.is_empty() {
            options = vec![PropOption::new("true", "Yes", 0), PropOption::new("false", "No", 1)];
        }
        Ok(PropertyDef {
            name: Arc::from(name.as_str()),
            label: label.unwrap_or_default(),
            ptype,
            field_type,
            group_name: group_name.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            options,
            has_unique_value: self.has_unique_value.unwrap_or(false),
            read_only: false,
            hubspot_defined: false,
            hidden: self.hidden.unwrap_or(false),
            form_field: self.form_field.unwrap_or(true),
            display_order: self.display_order.unwrap_or(-1),
            created_at: now,
            updated_at: now,
            archived: false,
        })
    }
}

impl PropOption {
    /// An option with no description, shown.
    pub(crate) fn new(value: &str, label: &str, order: i64) -> PropOption {
        PropOption {
            label: label.to_string(),
            value: value.to_string(),
            description: String::new(),
            display_order: order,
            hidden: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::property_defaults::default_properties;

    fn def(name: &str) -> PropertyDef {
        default_properties("0-1", 0).into_iter().find(|p| &*p.name == name).unwrap()
    }

    #[test]
    fn checks_values_as_hubspot_does() {
        let email = def("email");
        assert_eq!(email.normalize("Ann@Example.com", None, true).unwrap(), "ann@example.com");
        let bad = email.normalize("example.lcom", None, true).unwrap_err();
        assert_eq!((bad.code, bad.message.as_str()), ("INVALID_EMAIL", "Email address example.lcom is invalid"));
        let stage = def("lifecyclestage");
        assert_eq!(stage.normalize("lead", None, false).unwrap(), "lead");
        let bad = stage.normalize("Hot", None, false).unwrap_err();
        assert_eq!(bad.code, "INVALID_OPTION");
        assert!(bad.message.starts_with("Hot was not one of the allowed options: [Subscriber, Lead,"));
        assert_eq!(def("firstname").normalize("", None, false).unwrap(), "");
    }

    #[test]
    fn numbers_and_dates() {
        let companies = default_properties("0-2", 0);
        let employees = companies.iter().find(|p| &*p.name == "numberofemployees").unwrap();
        assert_eq!(employees.normalize("42", None, false).unwrap(), "42");
        let bad = employees.normalize("1/1/1", None, false).unwrap_err();
        assert_eq!((bad.code, bad.message.as_str()), ("INVALID_INTEGER", "1/1/1 was not a valid number."));
        let mut date = def("firstname");
        date.ptype = PropType::Date;
        assert_eq!(date.normalize("1572480000000", None, false).unwrap(), "2019-10-31");
        assert_eq!(date.normalize("1572480000001", None, false).unwrap_err().code, "INVALID_DATE");
        let deals = default_properties("0-3", 0);
        let close = deals.iter().find(|p| &*p.name == "closedate").unwrap();
        assert_eq!(close.normalize("2024-05-01T10:00:00Z", None, false).unwrap(), "2024-05-01T10:00:00.000Z");
        assert_eq!(close.normalize("tomorrow", None, false).unwrap_err().code, "INVALID_LONG");
    }

    #[test]
    fn multi_checkbox_appends_with_leading_semicolon() {
        let tickets = default_properties("0-5", 0);
        let cat = tickets.iter().find(|p| &*p.name == "hs_ticket_category").unwrap();
        assert_eq!(cat.normalize("BILLING_ISSUE", None, false).unwrap(), "BILLING_ISSUE");
        assert_eq!(
            cat.normalize(";PRODUCT_ISSUE", Some("BILLING_ISSUE"), false).unwrap(),
            "BILLING_ISSUE;PRODUCT_ISSUE"
        );
        assert_eq!(cat.normalize("BILLING_ISSUE;NOPE", None, false).unwrap_err().code, "INVALID_OPTION");
    }

    #[test]
    fn emails() {
        assert!(is_valid_email("a.b+c@example.co.uk"));
        assert!(!is_valid_email("example.lcom"));
        assert!(!is_valid_email("a@b"));
        assert!(!is_valid_email("a b@example.com"));
        assert!(!is_valid_email("not-an-email"));
    }
}
