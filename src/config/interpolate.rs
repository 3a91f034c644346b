//! `${VAR}` and `${VAR:?message}` interpolation over every string of a parsed TOML document.
//! A sync's `model` follows the model rules of `model_text.rs` instead, so SQL's own `$`s stay.

use toml::Value;

use super::model_text::interpolate_model;
use super::problem::MissingVar;

/// Replaces `${VAR}` in every string value with the variable's value, looked up with `lookup`.
/// `$$` stands for a literal `$`, except in a sync's `model`. Returns every missing variable at
/// once.
pub fn interpolate(value: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), Vec<MissingVar>> {
    let mut missing = Vec::new();
    walk(value, String::new(), lookup, &mut missing);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

fn walk(value: &mut Value, key: String, lookup: &dyn Fn(&str) -> Option<String>, missing: &mut Vec<MissingVar>) {
    match value {
        Value::String(s) if s.contains('$') && is_model_key(&key) => match interpolate_model(s, &key, lookup) {
            Ok(expanded) => *s = expanded,
            Err(vars) => missing.extend(vars),
        },
        Value::String(s) if s.contains('$') => *s = expand(s, &key, lookup, missing),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{key}[{i}]"), lookup, missing);
            }
        }
        Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let child = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                walk(v, child, lookup, missing);
            }
        }
        _ => {}
    }
}

/// Whether `key` is a sync's model, e.g. `syncs[0].model`.
fn is_model_key(key: &str) -> bool {
    key.strip_prefix("syncs[")
        .and_then(|rest| rest.split_once("]."))
        .is_some_and(|(i, field)| field == "model" && !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

fn expand(input: &str, key: &str, lookup: &dyn Fn(&str) -> Option<String>, missing: &mut Vec<MissingVar>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let Some(end) = body_start.find('}') else {
                out.push_str(&rest[pos..]);
                return out;
            };
            let body = &body_start[..end];
            let (var, message) = match body.split_once(":?") {
                Some((var, message)) => (var.trim(), Some(message.trim().to_string())),
                None => (body.trim(), None),
            };
            match lookup(var) {
                Some(value) => out.push_str(&value),
                None => missing.push(MissingVar { key: key.to_string(), var: var.to_string(), message }),
            }
            rest = &body_start[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("pat-1".into()),
            "HOST" => Some("db".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_variables_everywhere() {
        let mut v: Value =
            toml::from_str("a = \"${TOKEN}\"\n[t]\nurl = \"postgres://${HOST}:5432/x?p=$$1\"\nlist = [\"${HOST}\"]")
                .unwrap();
        interpolate(&mut v, &env).unwrap();
        assert_eq!(v["a"].as_str(), Some("pat-1"));
        assert_eq!(v["t"]["url"].as_str(), Some("postgres://db:5432/x?p=$1"));
        assert_eq!(v["t"]["list"][0].as_str(), Some("db"));
    }

    #[test]
    fn models_keep_their_dollars() {
        let mut v: Value =
            toml::from_str("[[syncs]]\nmodel = \"SELECT $$a$$ FROM ${HOST}.t\"\nname = \"$$x\"").unwrap();
        interpolate(&mut v, &env).unwrap();
        assert_eq!(v["syncs"][0]["model"].as_str(), Some("SELECT $$a$$ FROM db.t"));
        assert_eq!(v["syncs"][0]["name"].as_str(), Some("$x"));
    }

    #[test]
    fn reports_every_missing_variable_with_its_key() {
        let mut v: Value = toml::from_str("a = \"${NOPE}\"\n[h.main]\ntoken = \"${ALSO:?set it in .env}\"").unwrap();
        let missing = interpolate(&mut v, &env).unwrap_err();
        assert_eq!(
            missing,
            vec![
                MissingVar { key: "a".into(), var: "NOPE".into(), message: None },
                MissingVar { key: "h.main.token".into(), var: "ALSO".into(), message: Some("set it in .env".into()) },
            ]
        );
    }
}
