//! Column kinds and the SQL that turns each kind into the text HubSpot expects: dates as
//! `YYYY-MM-DD` (midnight UTC), datetimes as UTC ISO-8601, booleans as `true`/`false`, numbers
//! without float noise or trailing zeros, arrays as `;`-joined multi-select values.

/// The kinds of column a model can return, as far as HubSpot cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    Integer,
    Decimal,
    Float,
    Bool,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    Array,
    /// A DuckDB STRUCT or MAP: sent as its JSON text.
    Structured,
    /// Any column read as JSON text (arrays keep their elements apart); used for association
    /// columns.
    JsonText,
    Other,
}

impl ValueKind {
    pub fn is_number(self) -> bool {
        matches!(self, ValueKind::Integer | ValueKind::Decimal | ValueKind::Float)
    }

    /// How a column holding association values is read: arrays and structs as JSON, so their
    /// elements and `{ value, label }` objects stay apart; scalars as text.
    pub fn for_links(self) -> ValueKind {
        match self {
            ValueKind::Array | ValueKind::Structured => ValueKind::JsonText,
            other => other,
        }
    }
}

/// One model column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub kind: ValueKind,
    /// The warehouse's own type name, for messages.
    pub type_name: String,
}

/// Double-quotes an SQL identifier (both PostgreSQL and DuckDB).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const ISO_MS_PG: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"#;
const ISO_MS_DUCK: &str = "'%Y-%m-%dT%H:%M:%S.%gZ'";

/// PostgreSQL expression giving the HubSpot text of column `c` of kind `kind`.
pub fn postgres_expr(c: &str, kind: ValueKind) -> String {
    let c = format!("m.{}", quote_ident(c));
    match kind {
        ValueKind::Bool => format!("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"),
        ValueKind::Decimal => format!("trim_scale({c})::text"),
        ValueKind::Date => format!("to_char({c}, 'YYYY-MM-DD')"),
        ValueKind::Timestamp => format!("to_char({c}, {ISO_MS_PG})"),
        ValueKind::TimestampTz => format!("to_char({c} AT TIME ZONE 'UTC', {ISO_MS_PG})"),
        ValueKind::Array => format!("array_to_string({c}, ';')"),
        ValueKind::JsonText => format!("to_jsonb({c})::text"),
        _ => format!("{c}::text"),
    }
}

/// Classifies a PostgreSQL type by name.
pub fn postgres_kind(type_name: &str, is_array: bool) -> ValueKind {
    if is_array {
        return ValueKind::Array;
    }
    match type_name {
        "int2" | "int4" | "int8" | "oid" => ValueKind::Integer,
        "numeric" => ValueKind::Decimal,
        "float4" | "float8" => ValueKind::Float,
        "bool" => ValueKind::Bool,
        "date" => ValueKind::Date,
        "timestamp" => ValueKind::Timestamp,
        "timestamptz" => ValueKind::TimestampTz,
        "json" | "jsonb" => ValueKind::Json,
        "text" | "varchar" | "bpchar" | "name" | "uuid" | "citext" => ValueKind::Text,
        _ => ValueKind::Other,
    }
}

/// DuckDB expression giving the HubSpot text of column `c` of kind `kind`.
pub fn duckdb_expr(c: &str, kind: ValueKind) -> String {
    let c = format!("m.{}", quote_ident(c));
    match kind {
        ValueKind::Bool => format!("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"),
        ValueKind::Decimal => {
            format!("regexp_replace(regexp_replace(CAST({c} AS VARCHAR), '(\\.[0-9]*?)0+$', '\\1'), '\\.$', '')")
        }
        ValueKind::Date => format!("strftime({c}, '%Y-%m-%d')"),
        ValueKind::Timestamp => format!("strftime(CAST({c} AS TIMESTAMP), {ISO_MS_DUCK})"),
        ValueKind::TimestampTz => format!("strftime(make_timestamp(epoch_us({c})), {ISO_MS_DUCK})"),
        ValueKind::Array => format!("array_to_string({c}, ';')"),
        ValueKind::Structured | ValueKind::JsonText => format!("CAST(to_json({c}) AS VARCHAR)"),
        _ => format!("CAST({c} AS VARCHAR)"),
    }
}

/// Classifies a DuckDB type by its name as `DESCRIBE` prints it.
pub fn duckdb_kind(type_name: &str) -> ValueKind {
    let t = type_name.to_ascii_uppercase();
    if t.ends_with(']') {
        return ValueKind::Array;
    }
    if t.starts_with("STRUCT") || t.starts_with("MAP") {
        return ValueKind::Structured;
    }
    if t.starts_with("DECIMAL") || t.starts_with("NUMERIC") {
        return ValueKind::Decimal;
    }
    match t.as_str() {
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "HUGEINT" | "UTINYINT" | "USMALLINT" | "UINTEGER"
        | "UBIGINT" | "UHUGEINT" => ValueKind::Integer,
        "FLOAT" | "DOUBLE" | "REAL" => ValueKind::Float,
        "BOOLEAN" => ValueKind::Bool,
        "DATE" => ValueKind::Date,
        "TIMESTAMP" | "TIMESTAMP_MS" | "TIMESTAMP_NS" | "TIMESTAMP_S" | "DATETIME" => ValueKind::Timestamp,
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => ValueKind::TimestampTz,
        "JSON" => ValueKind::Json,
        "VARCHAR" | "UUID" | "TEXT" | "STRING" => ValueKind::Text,
        _ => ValueKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_type_names() {
        assert_eq!(postgres_kind("int8", false), ValueKind::Integer);
        assert_eq!(postgres_kind("text", true), ValueKind::Array);
        assert_eq!(postgres_kind("timestamptz", false), ValueKind::TimestampTz);
        assert_eq!(duckdb_kind("DECIMAL(18,3)"), ValueKind::Decimal);
        assert_eq!(duckdb_kind("VARCHAR[]"), ValueKind::Array);
        assert_eq!(duckdb_kind("TIMESTAMP WITH TIME ZONE"), ValueKind::TimestampTz);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(postgres_expr("d", ValueKind::Date), "to_char(m.\"d\", 'YYYY-MM-DD')");
    }
}
