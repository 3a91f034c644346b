//! HubSpot's object types: the standard objects with their type ids and names, and the
//! HubSpot-defined association type ids between them. Shared by the client and the emulator,
//! so both speak of the same objects the same way.

/// One standard (HubSpot-defined) CRM object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardObject {
    /// The plural API name used in paths, e.g. `contacts`.
    pub name: &'static str,
    /// The singular name HubSpot also accepts, e.g. `contact`.
    pub singular: &'static str,
    /// The object type id, e.g. `0-1`.
    pub type_id: &'static str,
}

/// HubSpot's standard objects
/// (https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis).
pub const STANDARD_OBJECTS: &[StandardObject] = &[
    StandardObject { name: "contacts", singular: "contact", type_id: "0-1" },
    StandardObject { name: "companies", singular: "company", type_id: "0-2" },
    StandardObject { name: "deals", singular: "deal", type_id: "0-3" },
    StandardObject { name: "tickets", singular: "ticket", type_id: "0-5" },
    StandardObject { name: "products", singular: "product", type_id: "0-7" },
    StandardObject { name: "line_items", singular: "line_item", type_id: "0-8" },
    StandardObject { name: "quotes", singular: "quote", type_id: "0-14" },
    StandardObject { name: "communications", singular: "communication", type_id: "0-18" },
    StandardObject { name: "tasks", singular: "task", type_id: "0-27" },
    StandardObject { name: "notes", singular: "note", type_id: "0-46" },
    StandardObject { name: "meetings", singular: "meeting", type_id: "0-47" },
    StandardObject { name: "calls", singular: "call", type_id: "0-48" },
    StandardObject { name: "emails", singular: "email", type_id: "0-49" },
    StandardObject { name: "leads", singular: "lead", type_id: "0-136" },
];

/// Finds a standard object by plural name, singular name or type id (case-insensitive).
pub fn standard_object(name_or_id: &str) -> Option<&'static StandardObject> {
    let wanted = name_or_id.trim().to_ascii_lowercase();
    STANDARD_OBJECTS.iter().find(|o| o.name == wanted || o.singular == wanted || o.type_id == wanted)
}

/// True when `s` has the shape of a custom object type id (`2-` followed by digits).
pub fn is_custom_type_id(s: &str) -> bool {
    s.strip_prefix("2-").is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// One HubSpot-defined association type between two standard objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefinedAssociationType {
    pub from_type_id: &'static str,
    pub to_type_id: &'static str,
    pub type_id: u32,
    /// `None` for the unlabeled default type.
    pub label: Option<&'static str>,
    /// A stable snake_case name users may write in config, e.g. `contact_to_company`.
    pub name: &'static str,
}

const fn def(
    from_type_id: &'static str,
    to_type_id: &'static str,
    type_id: u32,
    label: Option<&'static str>,
    name: &'static str,
) -> DefinedAssociationType {
    DefinedAssociationType { from_type_id, to_type_id, type_id, label, name }
}

/// HubSpot-defined association type ids
/// (https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associations-schema/guide).
/// The first entry for a pair with `label: None` is the pair's default (unlabeled) type.
pub const DEFINED_ASSOCIATION_TYPES: &[DefinedAssociationType] = &[
    def("0-1", "0-2", 279, None, "contact_to_company_unlabeled"),
    def("0-1", "0-2", 1, Some("Primary"), "contact_to_company"),
    def("0-1", "0-2", 931, Some("Billing contact"), "billing_contact_to_company"),
    def("0-2", "0-1", 280, None, "company_to_contact_unlabeled"),
    def("0-2", "0-1", 2, Some("Primary"), "company_to_contact"),
    def("0-2", "0-1", 930, Some("Billing contact"), "company_to_billing_contact"),
    def("0-3", "0-1", 3, None, "deal_to_contact"),
    def("0-1", "0-3", 4, None, "contact_to_deal"),
    def("0-3", "0-2", 341, None, "deal_to_company_unlabeled"),
    def("0-3", "0-2", 5, Some("Primary"), "deal_to_company"),
    def("0-2", "0-3", 342, None, "company_to_deal_unlabeled"),
    def("0-2", "0-3", 6, Some("Primary"), "company_to_deal"),
    def("0-5", "0-1", 16, None, "ticket_to_contact"),
    def("0-1", "0-5", 15, None, "contact_to_ticket"),
    def("0-5", "0-2", 339, None, "ticket_to_company_unlabeled"),
    def("0-5", "0-2", 26, Some("Primary"), "ticket_to_company"),
    def("0-2", "0-5", 340, None, "company_to_ticket_unlabeled"),
    def("0-2", "0-5", 25, Some("Primary"), "company_to_ticket"),
    def("0-3", "0-5", 27, None, "deal_to_ticket"),
    def("0-5", "0-3", 28, None, "ticket_to_deal"),
    def("0-2", "0-2", 450, None, "company_to_company"),
    def("0-2", "0-2", 13, Some("Parent Company"), "parent_to_child_company"),
    def("0-2", "0-2", 14, Some("Child Company"), "child_to_parent_company"),
    def("0-1", "0-1", 449, None, "contact_to_contact"),
    def("0-3", "0-3", 451, None, "deal_to_deal"),
    def("0-5", "0-5", 452, None, "ticket_to_ticket"),
    def("0-3", "0-8", 19, None, "deal_to_line_item"),
    def("0-8", "0-3", 20, None, "line_item_to_deal"),
    def("0-1", "0-136", 609, None, "contact_to_lead"),
    def("0-2", "0-136", 611, None, "company_to_lead"),
    def("0-46", "0-1", 202, None, "note_to_contact"),
    def("0-46", "0-2", 190, None, "note_to_company"),
    def("0-46", "0-3", 214, None, "note_to_deal"),
    def("0-46", "0-5", 228, None, "note_to_ticket"),
    def("0-1", "0-46", 201, None, "contact_to_note"),
    def("0-2", "0-46", 189, None, "company_to_note"),
    def("0-3", "0-46", 213, None, "deal_to_note"),
    def("0-5", "0-46", 227, None, "ticket_to_note"),
    def("0-48", "0-1", 194, None, "call_to_contact"),
    def("0-49", "0-1", 198, None, "email_to_contact"),
    def("0-47", "0-1", 200, None, "meeting_to_contact"),
    def("0-27", "0-1", 204, None, "task_to_contact"),
];

/// The HubSpot-defined types between two object type ids, default first.
pub fn defined_association_types<'a>(
    from_type_id: &'a str,
    to_type_id: &'a str,
) -> impl Iterator<Item = &'static DefinedAssociationType> + 'a {
    DEFINED_ASSOCIATION_TYPES.iter().filter(move |t| t.from_type_id == from_type_id && t.to_type_id == to_type_id)
}

/// The unlabeled default association type id between two standard objects, if HubSpot defines one.
pub fn default_association_type(from_type_id: &str, to_type_id: &str) -> Option<u32> {
    defined_association_types(from_type_id, to_type_id).find(|t| t.label.is_none()).map(|t| t.type_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_standard_objects_by_any_name() {
        assert_eq!(standard_object("Contacts").unwrap().type_id, "0-1");
        assert_eq!(standard_object("company").unwrap().name, "companies");
        assert_eq!(standard_object("0-5").unwrap().name, "tickets");
        assert!(standard_object("widgets").is_none());
    }

    #[test]
    fn custom_type_ids() {
        assert!(is_custom_type_id("2-3465404"));
        assert!(!is_custom_type_id("2-"));
        assert!(!is_custom_type_id("0-1"));
    }

    #[test]
    fn default_types_are_unlabeled() {
        assert_eq!(default_association_type("0-1", "0-2"), Some(279));
        assert_eq!(default_association_type("0-2", "0-1"), Some(280));
        assert_eq!(default_association_type("0-3", "0-2"), Some(341));
        assert_eq!(default_association_type("0-1", "0-99"), None);
    }
}
