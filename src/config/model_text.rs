//! The rules for a model's SQL text, inline or in a `.sql` file alike:
//!
//! - `${NAME}` and `${NAME:?message}` read an environment variable, where NAME is a variable
//!   name (letters, digits, `_`, not starting with a digit). Every other `$` is SQL's: `$$` and
//!   `$tag$` dollar quoting, `$1`, and `${` followed by anything but a name all stay as written.
//!   `$${NAME}` writes `${NAME}` itself.
//! - The statement may end with `;`, and with comments, which are dropped: hubsync wraps the
//!   model in a query of its own.

use super::problem::MissingVar;

/// Expands `${NAME}` in a model's text; returns every missing variable at once.
pub fn interpolate_model(
    text: &str,
    key: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<MissingVar>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(escaped) = after.strip_prefix('$').and_then(variable) {
            // `$${NAME}`: the reference itself, written out.
            out.push_str(&after[1..1 + escaped.len]);
            rest = &after[1 + escaped.len..];
        } else if let Some(reference) = variable(after) {
            match lookup(reference.name) {
                Some(value) => out.push_str(&value),
                None => missing.push(MissingVar {
                    key: key.to_string(),
                    var: reference.name.to_string(),
                    message: reference.message.map(str::to_string),
                }),
            }
            rest = &after[reference.len..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// A `${NAME}` or `${NAME:?message}` at the start of `text`.
struct Reference<'a> {
    name: &'a str,
    message: Option<&'a str>,
    /// Bytes it takes, `$` to `}`.
    len: usize,
}

fn variable(text: &str) -> Option<Reference<'_>> {
    let body = text.strip_prefix("${")?;
    let end = body.find('}')?;
    let inner = &body[..end];
    let (name, message) = match inner.split_once(":?") {
        Some((name, message)) => (name, Some(message.trim())),
        None => (inner, None),
    };
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(Reference { name, message, len: 2 + end + 1 })
}

/// The statement without what may follow it: trailing `;`s, whitespace and comments (`--` to the
/// end of the line, `/* */`). Quoted strings, identifiers and dollar-quoted bodies are skipped
/// whole, so a `;` or `--` inside them stays.
pub fn statement_body(sql: &str) -> &str {
    let bytes = sql.as_bytes();
    let mut i = 0;
    // The end of the last byte that belongs to the statement.
    let mut end = 0;
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        match bytes[i] {
            b'-' if next == Some(b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if next == Some(b'*') => i = block_comment_end(bytes, i),
            quote @ (b'\'' | b'"') => {
                let escapes = quote == b'\'' && i > 0 && matches!(bytes[i - 1], b'E' | b'e');
                i = quoted_end(bytes, i, quote, escapes);
                end = i;
            }
            b'$' => {
                let after_word = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                match dollar_tag(&sql[i..]).filter(|_| !after_word) {
                    Some(tag) => {
                        let body = i + tag.len();
                        i = sql[body..].find(tag).map_or(bytes.len(), |p| body + p + tag.len());
                    }
                    None => i += 1,
                }
                end = i;
            }
            b';' => i += 1,
            b if b.is_ascii_whitespace() => i += 1,
            _ => {
                i += sql[i..].chars().next().map_or(1, char::len_utf8);
                end = i;
            }
        }
    }
    &sql[..end]
}

/// After a `/* */` comment starting at `start` (PostgreSQL nests them).
fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// After the string or identifier opened by `quote` at `start`; a doubled quote is part of it,
/// and so is a backslash-escaped one in an `E'...'` string.
fn quoted_end(bytes: &[u8], start: usize, quote: u8, escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if escapes && bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// A dollar-quote opening tag (`$$` or `$name$`) at the start of `text`.
fn dollar_tag(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('$')?;
    let close = rest.find('$')?;
    let name = &rest[..close];
    let valid = name.is_empty()
        || (name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_'));
    valid.then(|| &text[..close + 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SCHEMA").then(|| "analytics".to_string())
    }

    fn expand(text: &str) -> Result<String, Vec<MissingVar>> {
        interpolate_model(text, "syncs[0].model", &env)
    }

    #[test]
    fn only_named_references_interpolate() {
        assert_eq!(expand("SELECT * FROM ${SCHEMA}.users").unwrap(), "SELECT * FROM analytics.users");
        let dollar_quoted = "SELECT $$it's ${not json}$$ AS a, $tag$x$tag$ AS b, $1, $${\"k\": 1}$$::jsonb";
        assert_eq!(expand(dollar_quoted).unwrap(), dollar_quoted);
        assert_eq!(expand("SELECT '$${SCHEMA}' AS literal").unwrap(), "SELECT '${SCHEMA}' AS literal");
        let missing = expand("SELECT ${NOPE}, ${ALSO:?set ALSO} FROM ${SCHEMA}.t").unwrap_err();
        let vars: Vec<(&str, Option<&str>)> = missing.iter().map(|m| (m.var.as_str(), m.message.as_deref())).collect();
        assert_eq!(vars, [("NOPE", None), ("ALSO", Some("set ALSO"))]);
        assert_eq!(missing[0].key, "syncs[0].model");
    }

    #[test]
    fn trailing_semicolons_and_comments_go() {
        assert_eq!(statement_body("SELECT 1 AS id;"), "SELECT 1 AS id");
        assert_eq!(statement_body("SELECT 1 AS id -- the ids\n"), "SELECT 1 AS id");
        assert_eq!(statement_body("SELECT 1 AS id; -- done"), "SELECT 1 AS id");
        assert_eq!(statement_body("SELECT 1 /* one */ AS id /* end */ ;\n\n"), "SELECT 1 /* one */ AS id");
        assert_eq!(statement_body("SELECT 'a;--b' AS s -- c"), "SELECT 'a;--b' AS s");
        assert_eq!(statement_body("SELECT E'it\\'s;' AS s;"), "SELECT E'it\\'s;' AS s");
        assert_eq!(statement_body("SELECT $$;--$$ AS s;"), "SELECT $$;--$$ AS s");
        assert_eq!(statement_body("SELECT $q$ $$ ; $q$ AS s ;"), "SELECT $q$ $$ ; $q$ AS s");
        assert_eq!(statement_body("SELECT \"a;\" FROM t; ; "), "SELECT \"a;\" FROM t");
        assert_eq!(statement_body("SELECT 'é' AS s; -- ü"), "SELECT 'é' AS s");
        assert_eq!(statement_body("SELECT a$1 FROM t;"), "SELECT a$1 FROM t");
        assert_eq!(statement_body("SELECT 1;\nSELECT 2;"), "SELECT 1;\nSELECT 2");
        assert_eq!(statement_body("SELECT 'unclosed"), "SELECT 'unclosed");
    }
}
