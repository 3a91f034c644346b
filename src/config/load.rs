//! Reading, interpolating and checking a config file: every problem is reported at once, each
//! with the file, the key and what to do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::daemon::{check_daemon, check_schedule, DaemonSettings};
use super::interpolate::interpolate;
use super::model::{
    AssociationConfig, ConfigFile, HubSpotAccountConfig, ListConfig, MatchConfig, SyncMode, DEFAULT_STATE_MEMORY_MB,
    MIN_STATE_MEMORY_MB,
};
use super::model_text::{interpolate_model, statement_body};
use super::problem::{ConfigError, Problem};
use super::warehouse::WarehouseConfig;
use hubspot_model::objects;

/// A config that parsed and passed every offline check.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file it came from.
    pub path: PathBuf,
    /// Absolute folder holding one state file per sync.
    pub state_dir: PathBuf,
    /// Warehouses by name, with file paths made absolute.
    pub warehouses: BTreeMap<String, WarehouseConfig>,
    pub hubspot: BTreeMap<String, HubSpotAccountConfig>,
    pub syncs: Vec<SyncSpec>,
    /// The `[daemon]` section, checked.
    pub daemon: DaemonSettings,
    /// `state_memory_mb`: the memory budget of each run's state database, in MiB.
    pub state_memory_mb: u64,
    /// `state_threads`: the threads of each run's state database; `None` for the default.
    pub state_threads: Option<usize>,
}

/// One sync with its references resolved and its model read.
#[derive(Debug, Clone)]
pub struct SyncSpec {
    pub name: String,
    pub warehouse: String,
    pub hubspot: String,
    /// The model's SQL text.
    pub model_sql: String,
    /// Where the model came from, for messages: the `.sql` file, or `None` when inline.
    pub model_file: Option<PathBuf>,
    pub primary_key: String,
    pub object: String,
    pub mode: SyncMode,
    pub match_on: MatchConfig,
    pub fields: BTreeMap<String, String>,
    pub associations: Vec<AssociationConfig>,
    /// The static list to keep, if any.
    pub list_name: Option<String>,
    /// Where this sync is in the file, e.g. `syncs[0]`.
    pub key: String,
    /// When `hubsync run` starts it on its own; `None` runs it only when triggered.
    pub schedule: Option<super::schedule::Schedule>,
    /// The user's consent to keep hubsync's own unique key property (`hubsync_key`) on the
    /// object, so records not found by search are upserted by it instead of created.
    pub unique_key_property: bool,
    /// What happens to a record whose row left the model.
    pub on_delete: super::OnDelete,
    /// The delete guard's limit.
    pub max_deletes: super::DeleteLimit,
}

impl Config {
    pub fn sync(&self, name: &str) -> Option<&SyncSpec> {
        self.syncs.iter().find(|s| s.name == name)
    }

    /// The state file of a sync.
    pub fn state_path(&self, sync: &SyncSpec) -> PathBuf {
        self.state_dir.join(format!("{}.duckdb", sync.name))
    }

    /// Finds a sync by name, or says which ones exist.
    pub fn require_sync(&self, name: &str) -> Result<&SyncSpec, ConfigError> {
        self.sync(name).ok_or_else(|| {
            let known: Vec<&str> = self.syncs.iter().map(|s| s.name.as_str()).collect();
            ConfigError::one(
                &self.path,
                "syncs",
                format!("no sync is named `{name}`"),
                Some(format!("defined syncs: {}", list_or_none(&known))),
            )
        })
    }

    /// Reads and checks the config file, reading `${VAR}`s from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// Reads and checks the config file with a given environment lookup.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                Some("pass the config with --config FILE, or run `hubsync demo` to see an example".to_string())
            } else {
                None
            };
            ConfigError::one(path, "", format!("cannot read the config file: {e}"), hint)
        })?;
        Self::parse(path, &text, env)
    }

    /// Checks config text as if read from `path` (relative paths resolve against its folder).
    pub fn parse(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|span| line_col(text, span.start))
                .map(|(line, col)| format!("line {line}, column {col}"))
                .unwrap_or_default();
            ConfigError::one(path, &key, format!("not valid TOML: {}", e.message()), None)
        })?;
        if let Err(missing) = interpolate(&mut value, env) {
            let problems = missing
                .into_iter()
                .map(|m| Problem {
                    key: m.key,
                    message: format!("environment variable `{}` is not set", m.var),
                    hint: Some(m.message.unwrap_or_else(|| format!("export {}=... before running hubsync", m.var))),
                })
                .collect();
            return Err(ConfigError { file: path.to_path_buf(), problems });
        }
        let file: ConfigFile = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            ConfigError::one(path, &key, e.inner().to_string(), None)
        })?;
        check(path, file, env)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
    (line, col)
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Picks the named entry, or the only one when no name is given.
fn pick(
    what: &str,
    table: &str,
    named: Option<&String>,
    defined: &[&str],
    key: &str,
    problems: &mut Vec<Problem>,
) -> String {
    match named {
        Some(name) if defined.contains(&name.as_str()) => name.clone(),
        Some(name) => {
            problems.push(Problem {
                key: key.to_string(),
                message: format!("{what} `{name}` is not defined"),
                hint: Some(format!("define [{table}.{name}] or use one of: {}", list_or_none(defined))),
            });
            String::new()
        }
        None if defined.len() == 1 => defined[0].to_string(),
        None if defined.is_empty() => {
            problems.push(Problem {
                key: key.to_string(),
                message: format!("no {what} is configured"),
                hint: Some(format!("add a [{table}.NAME] section")),
            });
            String::new()
        }
        None => {
            problems.push(Problem {
                key: key.to_string(),
                message: format!("several {table} are configured, so the sync must name one"),
                hint: Some(format!("set it to one of: {}", defined.join(", "))),
            });
            String::new()
        }
    }
}

fn check(path: &Path, file: ConfigFile, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let mut problems = Vec::new();

    let warehouses: BTreeMap<String, WarehouseConfig> = file
        .warehouses
        .into_iter()
        .map(|(name, w)| {
            let w = w.resolve(&base, &format!("warehouses.{name}"), &mut problems);
            (name, w)
        })
        .collect();
    let daemon = check_daemon(&file.daemon, &mut problems);
    check_state_budget(file.state_memory_mb, file.state_threads, &mut problems);
    for (name, account) in &file.hubspot {
        let key = format!("hubspot.{name}");
        match url::Url::parse(&account.base_url) {
            Err(_) => problems.push(Problem {
                key: format!("{key}.base_url"),
                message: format!("`{}` is not a URL", account.base_url),
                hint: Some("for example https://api.hubapi.com or http://127.0.0.1:8080".into()),
            }),
            Ok(url) => {
                if let Some(problem) = insecure_base_url(&key, &url, account.allow_insecure_http) {
                    problems.push(problem);
                }
            }
        }
        if account.max_requests_per_10s == 0 {
            problems.push(Problem {
                key: format!("{key}.max_requests_per_10s"),
                message: "must be at least 1".into(),
                hint: None,
            });
        }
        if account.max_in_flight == 0 {
            problems.push(Problem {
                key: format!("{key}.max_in_flight"),
                message: "must be at least 1".into(),
                hint: None,
            });
        }
        if account.search_requests_per_sec == 0 {
            problems.push(Problem {
                key: format!("{key}.search_requests_per_sec"),
                message: "must be at least 1".into(),
                hint: None,
            });
        }
        check_oauth(&key, account, &mut problems);
    }

    let warehouse_names: Vec<&str> = warehouses.keys().map(String::as_str).collect();
    let account_names: Vec<&str> = file.hubspot.keys().map(String::as_str).collect();
    let mut seen_names = BTreeSet::new();
    let mut syncs = Vec::new();
    for (i, s) in file.syncs.into_iter().enumerate() {
        let key = format!("syncs[{i}]");
        let mut problem = |field: &str, message: String, hint: Option<String>| {
            problems.push(Problem { key: format!("{key}.{field}"), message, hint });
        };
        if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            problem(
                "name",
                format!("`{}` is not a valid sync name", s.name),
                Some("use letters, digits, `_` and `-` (it names the state file)".into()),
            );
        } else if !seen_names.insert(s.name.clone()) {
            problem("name", format!("two syncs are named `{}`", s.name), None);
        }
        for (field, value) in [
            ("primary_key", &s.primary_key),
            ("match.column", &s.match_on.column),
            ("match.property", &s.match_on.property),
        ] {
            if value.trim().is_empty() {
                problem(field, "must not be empty".into(), None);
            }
        }
        if let Err(message) = check_object_name(&s.object) {
            problem(
                "object",
                message,
                Some(
                    "use a standard object (contacts, companies, deals, tickets, ...), or a custom \
                     object by name, `2-NNN` id or fully qualified name (p123_name)"
                        .into(),
                ),
            );
        }
        if s.unique_key_property && objects::standard_object(&s.object).is_some_and(|o| o.type_id == "0-1") {
            problem(
                "unique_key_property",
                "contacts cannot use hubsync's unique key property".into(),
                Some(
                    "remove it: a contacts sync matched on `email` upserts by it, and one matched on another \
                     property journals its creates and reconciles them instead"
                        .into(),
                ),
            );
        }
        let mut by_property: BTreeMap<&str, &str> = BTreeMap::new();
        for (column, property) in &s.fields {
            if property.trim().is_empty() {
                problem(&format!("fields.{column}"), "the property name is empty".into(), None);
            } else if let Some(other) = by_property.insert(property, column) {
                problem(
                    &format!("fields.{column}"),
                    format!("property `{property}` is also mapped from column `{other}`"),
                    Some("map each HubSpot property from one column".into()),
                );
            }
        }
        for (j, a) in s.associations.iter().enumerate() {
            let field = |name: &str| format!("associations[{j}].{name}");
            if let Err(message) = check_object_name(&a.to) {
                problem(&field("to"), message, None);
            }
            for (name, value) in [("column", &a.column), ("match", &a.match_property)] {
                if value.trim().is_empty() {
                    problem(&field(name), "must not be empty".into(), None);
                }
            }
            if let Some(type_name) = &a.type_name {
                if type_name.parse::<u32>().is_err()
                    && !objects::DEFINED_ASSOCIATION_TYPES.iter().any(|t| t.name == type_name)
                {
                    problem(
                        &field("type"),
                        format!("`{type_name}` is not a HubSpot-defined association type"),
                        Some("use a name such as contact_to_company or deal_to_contact, a numeric type id, or omit it for the default type".into()),
                    );
                }
            }
        }
        let list_name = match &s.list {
            None | Some(ListConfig::Enabled(false)) => None,
            Some(ListConfig::Enabled(true)) => Some(s.name.clone()),
            Some(ListConfig::Named(named)) if named.name.trim().is_empty() => {
                problem("list.name", "must not be empty".into(), None);
                None
            }
            Some(ListConfig::Named(named)) => Some(named.name.trim().to_string()),
        };
        let (model_sql, model_file) = match read_model(&base, &s.model, &format!("{key}.model"), env) {
            Ok(found) => found,
            Err((message, hint)) => {
                problem("model", message, hint);
                (String::new(), None)
            }
        };
        let warehouse = pick(
            "warehouse",
            "warehouses",
            s.warehouse.as_ref(),
            &warehouse_names,
            &format!("{key}.warehouse"),
            &mut problems,
        );
        let hubspot = pick(
            "HubSpot account",
            "hubspot",
            s.hubspot.as_ref(),
            &account_names,
            &format!("{key}.hubspot"),
            &mut problems,
        );
        let schedule = check_schedule(&format!("{key}.schedule"), s.schedule.as_ref(), daemon.timezone, &mut problems);
        let max_deletes = match s.max_deletes.as_ref().map(super::DeleteLimit::parse) {
            None => super::DEFAULT_MAX_DELETES,
            Some(Ok(limit)) => limit,
            Some(Err(message)) => {
                problems.push(Problem {
                    key: format!("{key}.max_deletes"),
                    message,
                    hint: Some("for example max_deletes = 500 or max_deletes = \"10%\"".into()),
                });
                super::DEFAULT_MAX_DELETES
            }
        };
        syncs.push(SyncSpec {
            name: s.name,
            warehouse,
            hubspot,
            model_sql,
            model_file,
            primary_key: s.primary_key,
            object: s.object,
            mode: s.mode,
            match_on: s.match_on,
            fields: s.fields,
            associations: s.associations,
            list_name,
            key,
            schedule,
            unique_key_property: s.unique_key_property,
            on_delete: s.on_delete,
            max_deletes,
        });
    }

    if !problems.is_empty() {
        return Err(ConfigError { file: path.to_path_buf(), problems });
    }
    Ok(Config {
        path: path.to_path_buf(),
        state_dir: base.join(file.state_dir),
        warehouses,
        hubspot: file.hubspot,
        syncs,
        daemon,
        state_memory_mb: file.state_memory_mb,
        state_threads: file.state_threads,
    })
}

/// `state_memory_mb` must be at least [`MIN_STATE_MEMORY_MB`] (the minimum: the journal merge
/// and the diff's joins need that much to run, spilling the rest); `state_threads` at least 1.
fn check_state_budget(memory_mb: u64, threads: Option<usize>, problems: &mut Vec<Problem>) {
    if memory_mb < MIN_STATE_MEMORY_MB {
        problems.push(Problem {
            key: "state_memory_mb".into(),
            message: format!("{memory_mb} is below the minimum of {MIN_STATE_MEMORY_MB} MiB"),
            hint: Some(format!(
                "set it to {MIN_STATE_MEMORY_MB} or more (default {DEFAULT_STATE_MEMORY_MB}); a run that needs more \
                 spills to disk"
            )),
        });
    }
    if threads == Some(0) {
        problems.push(Problem {
            key: "state_threads".into(),
            message: "must be at least 1".into(),
            hint: Some("leave it out for one per CPU, at most 2".into()),
        });
    }
}

/// A model is a file when it is a single `.sql` path, otherwise inline SQL. Both follow the
/// rules of `model_text.rs`: `${NAME}` reads the environment (inline models were expanded with
/// the rest of the file), and a trailing `;` or comment is dropped.
fn read_model(
    base: &Path,
    model: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Option<PathBuf>), (String, Option<String>)> {
    let trimmed = model.trim();
    if statement_body(trimmed).is_empty() {
        return Err(("the model is empty".into(), Some("write SQL, or the path of a .sql file".into())));
    }
    let looks_like_file = trimmed.to_ascii_lowercase().ends_with(".sql") && !trimmed.contains(char::is_whitespace);
    if !looks_like_file {
        return Ok((statement_body(trimmed).to_string(), None));
    }
    let path = base.join(trimmed);
    let sql = std::fs::read_to_string(&path).map_err(|e| {
        (
            format!("cannot read model file {}: {e}", path.display()),
            Some("paths are relative to the config file's folder".into()),
        )
    })?;
    let sql = interpolate_model(&sql, key, env).map_err(|missing| {
        let names: Vec<String> = missing.iter().map(|m| format!("`{}`", m.var)).collect();
        let hint = missing.iter().find_map(|m| m.message.clone());
        (
            format!("model file {} uses environment variable(s) {} that are not set", path.display(), names.join(", ")),
            Some(hint.unwrap_or_else(|| {
                "export them before running hubsync, or write `$${NAME}` for a literal `${NAME}`".to_string()
            })),
        )
    })?;
    match statement_body(&sql) {
        "" => Err((format!("model file {} is empty", path.display()), None)),
        body => Ok((body.to_string(), Some(path))),
    }
}

/// Rejects object names that cannot name any HubSpot object type. Plain names that are not
/// standard objects may be custom objects: `hubsync validate` resolves those against the portal.
fn check_object_name(object: &str) -> Result<(), String> {
    let o = object.trim();
    if objects::standard_object(o).is_some() || objects::is_custom_type_id(o) {
        return Ok(());
    }
    if o.starts_with("0-") {
        return Err(format!("`{object}` is not a HubSpot standard object type id"));
    }
    let valid_name = o.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid_name {
        Ok(())
    } else {
        Err(format!("`{object}` is not a HubSpot object type"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/nonexistent/hubsync.toml"), text, &|v| (v == "TOKEN").then(|| "pat".to_string()))
    }

    const MINIMAL: &str = r#"
[warehouses.wh]
type = "duckdb"
path = "w.duckdb"

[hubspot.main]
token = "${TOKEN}"

[[syncs]]
name = "contacts"
model = "select 1 as id, 'a@b.c' as email"
primary_key = "id"
object = "contacts"
match = { column = "email", property = "email" }
fields = { email = "email" }
"#;

    #[test]
    fn minimal_config_resolves_defaults() {
        let c = parse(MINIMAL).unwrap();
        let s = &c.syncs[0];
        assert_eq!((s.warehouse.as_str(), s.hubspot.as_str()), ("wh", "main"));
        assert_eq!(s.mode, SyncMode::Upsert);
        assert_eq!(c.hubspot["main"].api_version, "2026-03");
        assert_eq!(c.hubspot["main"].token.as_ref().unwrap().expose(), "pat");
        assert!(c.state_dir.ends_with("state"));
    }

    #[test]
    fn unknown_key_names_its_path() {
        let err = parse(&MINIMAL.replace("primary_key", "colour = 1\nprimary_key")).unwrap_err();
        assert_eq!(err.problems[0].key, "syncs[0].colour");
        assert!(err.problems[0].message.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn object_names_are_checked() {
        assert!(check_object_name("deals").is_ok());
        assert!(check_object_name("2-1234").is_ok());
        assert!(check_object_name("p1234_pets").is_ok());
        assert!(check_object_name("pets").is_ok());
        assert!(check_object_name("0-999").is_err());
        assert!(check_object_name("my objects!").is_err());
    }

    #[test]
    fn plain_http_is_refused_beyond_loopback_unless_allowed() {
        let with = |url: &str, extra: &str| {
            parse(
                &MINIMAL
                    .replace("token = \"${TOKEN}\"", &format!("token = \"${{TOKEN}}\"\nbase_url = \"{url}\"\n{extra}")),
            )
        };
        for ok in ["https://api.hubapi.com", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080"] {
            assert!(with(ok, "").is_ok(), "{ok}");
        }
        let err = with("http://192.0.2.10:8080", "").unwrap_err();
        assert_eq!(err.problems[0].key, "hubspot.main.base_url");
        assert!(err.problems[0].message.contains("unencrypted"), "{err}");
        assert!(with("http://hubspot.internal", "").is_err());
        assert!(with("http://192.0.2.10:8080", "allow_insecure_http = true").is_ok());
    }

    #[test]
    fn removal_settings_are_checked_naming_file_and_key() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.syncs[0].on_delete, crate::config::OnDelete::Nothing);
        assert_eq!(c.syncs[0].max_deletes, crate::config::DEFAULT_MAX_DELETES);
        let c =
            parse(&MINIMAL.replace("primary_key", "on_delete = \"archive\"\nmax_deletes = 500\nprimary_key")).unwrap();
        assert_eq!(c.syncs[0].on_delete, crate::config::OnDelete::Archive);
        assert_eq!(c.syncs[0].max_deletes, crate::config::DeleteLimit::Count(500));
        let err = parse(&MINIMAL.replace("primary_key", "max_deletes = \"10 %\"\nprimary_key")).unwrap_err();
        assert_eq!(err.problems[0].key, "syncs[0].max_deletes");
        assert!(err.to_string().contains("/nonexistent/hubsync.toml") && err.to_string().contains("10 %"), "{err}");
        let err = parse(&MINIMAL.replace("primary_key", "on_delete = \"purge\"\nprimary_key")).unwrap_err();
        assert_eq!(err.problems[0].key, "syncs[0].on_delete");
        assert!(err.problems[0].message.contains("purge") && err.problems[0].message.contains("archive"), "{err}");
    }

    #[test]
    fn toml_errors_give_line_and_column() {
        let err = parse("[warehouses\n").unwrap_err();
        assert!(err.problems[0].key.starts_with("line 1"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The shipped example config parses and passes every offline check, so it cannot rot.
    #[test]
    fn shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hubsync.example.toml");
        let env = |name: &str| match name {
            "WAREHOUSE_URL" => Some("postgres://postgres@127.0.0.1/postgres".to_string()),
            "HUBSPOT_TOKEN" => Some("pat-na1-example".to_string()),
            _ => None,
        };
        let config = Config::load_with_env(&path, &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.syncs.len(), 2);
        assert!(config.syncs[0].model_sql.contains("analytics.users"));
    }
}

/// A plain `http://` base URL sends the token unencrypted: refused unless the host is loopback
/// or the account sets `allow_insecure_http`. Checked when the config loads, so before any request.
fn insecure_base_url(key: &str, url: &url::Url, allowed: bool) -> Option<Problem> {
    if url.scheme() != "http" || allowed {
        return None;
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    (!loopback).then(|| Problem {
        key: format!("{key}.base_url"),
        message: format!(
            "`{url}` is plain http to a host that is not loopback: the HubSpot token would travel unencrypted"
        ),
        hint: Some(format!(
            "use https://, or, only for an emulator on a network you trust, set {key}.allow_insecure_http = true"
        )),
    })
}

/// `client_id` and `client_secret` come together, and the redirect URL is one `hubsync auth
/// login` can listen on: plain http on a loopback host, with a port.
fn check_oauth(key: &str, account: &HubSpotAccountConfig, problems: &mut Vec<Problem>) {
    match (&account.client_id, &account.client_secret) {
        (Some(_), None) => problems.push(Problem {
            key: format!("{key}.client_secret"),
            message: "client_id is set but client_secret is not".into(),
            hint: Some("set client_secret = \"${HUBSPOT_CLIENT_SECRET}\" from the app's Auth tab".into()),
        }),
        (None, Some(_)) => problems.push(Problem {
            key: format!("{key}.client_id"),
            message: "client_secret is set but client_id is not".into(),
            hint: Some("copy the client id from the app's Auth tab".into()),
        }),
        (Some(id), Some(secret)) if id.trim().is_empty() || secret.is_empty() => problems.push(Problem {
            key: format!("{key}.client_id"),
            message: "client_id and client_secret must not be empty".into(),
            hint: None,
        }),
        _ => {}
    }
    if account.client_id.is_none() {
        return;
    }
    let loopback = |host: &str| matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    let ok = url::Url::parse(&account.redirect_uri)
        .ok()
        .is_some_and(|u| u.scheme() == "http" && u.host_str().is_some_and(loopback) && u.port().is_some());
    if !ok {
        problems.push(Problem {
            key: format!("{key}.redirect_uri"),
            message: format!("`{}` is not a loopback http URL with a port", account.redirect_uri),
            hint: Some(format!(
                "`hubsync auth login` listens on it; for example {} (add the same URL to the app's redirect URLs)",
                super::model::DEFAULT_REDIRECT_URI
            )),
        });
    }
    if let Some(url) = &account.authorize_url {
        if url::Url::parse(url).is_err() {
            problems.push(Problem {
                key: format!("{key}.authorize_url"),
                message: format!("`{url}` is not a URL"),
                hint: Some(format!("for example {}", super::model::DEFAULT_AUTHORIZE_URL)),
            });
        }
    }
}
