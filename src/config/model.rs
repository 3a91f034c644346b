//! The config file's shape: what the user writes, with every field documented and defaulted here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::warehouse::WarehouseConfig;
use super::Secret;
use hubspot_client as hubspot;

/// The whole config file (`hubsync.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Folder for the state: one DuckDB file per sync. Relative paths are relative to the
    /// config file's folder.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Memory one sync run's state database may use, in MiB (DuckDB's `memory_limit`), for
    /// every phase: staging, the diff, delivery, the journal merge, associations and lists. Work
    /// that does not fit spills to `<state_dir>/<sync>.duckdb.tmp/`; it does not fail. At least
    /// 128 (the minimum, also the default); each sync running at once has its own.
    #[serde(default = "default_state_memory_mb")]
    pub state_memory_mb: u64,
    /// Threads one sync run's state database may use (DuckDB's `threads`); unset, one per CPU,
    /// at most 2. Fewer threads use less memory and run the diff and merge slower.
    pub state_threads: Option<usize>,
    /// Warehouses the models run on, by name.
    #[serde(default)]
    pub warehouses: BTreeMap<String, WarehouseConfig>,
    /// HubSpot accounts (portals) the syncs write to, by name.
    #[serde(default)]
    pub hubspot: BTreeMap<String, HubSpotAccountConfig>,
    /// The syncs: one SQL model each, delivered to one HubSpot object type.
    #[serde(default)]
    pub syncs: Vec<SyncConfig>,
    /// The long-running side (`hubsync run`): admin API address, run limit, default time zone.
    #[serde(default)]
    pub daemon: DaemonConfig,
}

/// The `[daemon]` section: how `hubsync run` serves its admin API and runs syncs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Address (`IP:port`) of the admin HTTP API and `/metrics`; `--listen` overrides it.
    /// Anything but a loopback address needs `admin_token`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Most sync runs at once, over all syncs (a sync never runs twice at once anyway).
    #[serde(default = "default_max_concurrent_runs")]
    pub max_concurrent_runs: usize,
    /// Bearer token every admin API call must carry (all but `/healthz` and `/readyz`).
    /// Use `${VAR}`; `hubsync trigger` and `hubsync status --daemon` send it. Unset, the daemon
    /// generates one in `<state_dir>/admin-token` (mode 0600) that runs and resets need, and
    /// leaves the read-only routes open (on loopback only).
    pub admin_token: Option<Secret>,
    /// IANA time zone of cron schedules that do not name one, e.g. `Europe/Paris`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: default_listen(),
            max_concurrent_runs: default_max_concurrent_runs(),
            admin_token: None,
            timezone: default_timezone(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8484".to_string()
}
fn default_max_concurrent_runs() -> usize {
    4
}
fn default_timezone() -> String {
    "UTC".to_string()
}

/// When `hubsync run` starts a sync on its own: set exactly one of `cron` and `interval_secs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A cron expression: 5 fields (`minute hour day-of-month month day-of-week`, days of the
    /// week 0-7 from Sunday or SUN-SAT), 6 with seconds first, or `@hourly`/`@daily`/`@weekly`.
    /// A fire time that comes while the sync is still running is skipped.
    pub cron: Option<String>,
    /// Seconds from one run's start to the next; the first run starts with the daemon.
    pub interval_secs: Option<u64>,
    /// IANA time zone `cron` is read in; defaults to `daemon.timezone`.
    pub timezone: Option<String>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}

/// The memory budget of a run's state database unless `state_memory_mb` says otherwise: the
/// minimum. A 1,000,000-row first sync with an association and a list runs within it, spilling
/// the rest (the journal merge runs one step at a time for this, `sql/merge_journal_last.sql`).
pub const DEFAULT_STATE_MEMORY_MB: u64 = 128;
/// The smallest `state_memory_mb` accepted (the minimum budget): below it, some of DuckDB's
/// joins and sorts cannot pin the pages they work on, and fail rather than spill (seen at 32 MiB
/// on 200,000 rows, and at 64 MiB with two threads on a first sync with associations).
pub const MIN_STATE_MEMORY_MB: u64 = 128;
fn default_state_memory_mb() -> u64 {
    DEFAULT_STATE_MEMORY_MB
}

/// One HubSpot account (portal) and how hard hubsync may use its API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotAccountConfig {
    /// Private app access token or Service Key (`pat-…`). Use `${VAR}` to read it from the
    /// environment rather than writing it in the file.
    pub token: Option<Secret>,
    /// API base URL; point it at `hubsync emulator` (e.g. `http://127.0.0.1:8080`) to rehearse.
    /// Plain `http://` is accepted only to a loopback host, unless `allow_insecure_http` is set.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Allow a plain `http://` `base_url` to a host other than loopback. The token then travels
    /// unencrypted, readable by anyone on the path; meant only for an emulator on a trusted
    /// network. Default `false`.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// HubSpot's date-based API version used in every path.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Requests allowed in any rolling 10 seconds (100 for Free/Starter private apps, 190 for
    /// Professional/Enterprise, 250 with the API limit increase).
    #[serde(default = "default_max_requests_per_10s")]
    pub max_requests_per_10s: u32,
    /// Requests allowed per day for the whole account (250,000 for Free/Starter).
    #[serde(default = "default_daily_limit")]
    pub daily_limit: u64,
    /// CRM search requests per second (HubSpot allows 5 per account).
    #[serde(default = "default_search_requests_per_sec")]
    pub search_requests_per_sec: u32,
    /// Requests to this account in flight at once, at most, shared by every sync on it.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Time allowed for one HTTP request.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Attempts for one request that meets a retryable failure (429, 5xx, timeout).
    #[serde(default = "default_retry_max_attempts")]
    pub retry_max_attempts: u32,
    /// How long HubSpot's search index may lag a write, in seconds. A create whose answer was
    /// lost (a gateway error, a timeout, a dropped connection, a crash) is looked up by search
    /// only once this long has passed since it was sent, so "not found" means "not created".
    #[serde(default = "default_search_index_lag_secs")]
    pub search_index_lag_secs: u64,
    /// Client id of the HubSpot app `hubsync auth login` signs in through (OAuth).
    pub client_id: Option<String>,
    /// That app's client secret; use `${VAR}` to read it from the environment.
    pub client_secret: Option<Secret>,
    /// Where HubSpot sends the browser back after consent: a loopback `http://` URL with a port,
    /// registered as a redirect URL of the app. `hubsync auth login` listens there once.
    #[serde(default = "default_redirect_uri")]
    pub redirect_uri: String,
    /// HubSpot's consent page. By default `https://app.hubspot.com/oauth/authorize`, or
    /// `<base_url>/oauth/authorize` when `base_url` points elsewhere (the emulator).
    pub authorize_url: Option<String>,
}

/// The redirect URL `hubsync auth login` listens on unless `redirect_uri` says otherwise.
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:8765/oauth-callback";
/// HubSpot's OAuth consent page.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://app.hubspot.com/oauth/authorize";

impl HubSpotAccountConfig {
    /// The OAuth app, when both `client_id` and `client_secret` are set.
    pub fn oauth_app(&self) -> Option<hubspot_client::OAuthApp> {
        Some(hubspot_client::OAuthApp {
            client_id: self.client_id.clone()?,
            client_secret: self.client_secret.clone()?,
        })
    }

    /// The consent page to send the user to.
    pub fn authorize_endpoint(&self) -> String {
        match &self.authorize_url {
            Some(url) => url.clone(),
            None if self.base_url.trim_end_matches('/') == hubspot::DEFAULT_BASE_URL => DEFAULT_AUTHORIZE_URL.into(),
            None => format!("{}/oauth/authorize", self.base_url.trim_end_matches('/')),
        }
    }
}

fn default_redirect_uri() -> String {
    DEFAULT_REDIRECT_URI.to_string()
}

fn default_base_url() -> String {
    hubspot::DEFAULT_BASE_URL.to_string()
}
fn default_api_version() -> String {
    hubspot::DEFAULT_API_VERSION.to_string()
}
fn default_max_requests_per_10s() -> u32 {
    hubspot::DEFAULT_MAX_REQUESTS_PER_10S
}
fn default_daily_limit() -> u64 {
    hubspot::DEFAULT_DAILY_LIMIT
}
fn default_search_requests_per_sec() -> u32 {
    hubspot::DEFAULT_SEARCH_REQUESTS_PER_SEC
}
fn default_max_in_flight() -> usize {
    hubspot::DEFAULT_MAX_IN_FLIGHT
}
fn default_timeout_secs() -> u64 {
    hubspot::DEFAULT_TIMEOUT_SECS
}
fn default_retry_max_attempts() -> u32 {
    hubspot::DEFAULT_RETRY_MAX_ATTEMPTS
}
/// HubSpot documents that search results may take a few seconds to reflect a write; 10 s is
/// several times what the emulator's recordings and users report, and costs only a wait in the
/// rare run that meets an uncertain create.
pub const DEFAULT_SEARCH_INDEX_LAG_SECS: u64 = 10;
fn default_search_index_lag_secs() -> u64 {
    DEFAULT_SEARCH_INDEX_LAG_SECS
}

/// One sync: a SQL model delivered to one HubSpot object type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Unique name; also the state file's name (`<state_dir>/<name>.duckdb`).
    pub name: String,
    /// Warehouse to run the model on; needed only when several are configured.
    pub warehouse: Option<String>,
    /// HubSpot account to write to; needed only when several are configured.
    pub hubspot: Option<String>,
    /// The model: inline SQL, or the path of a `.sql` file relative to the config file.
    pub model: String,
    /// The model column that identifies a row; rows with a null or repeated key are set aside.
    pub primary_key: String,
    /// HubSpot object type: `contacts`, `companies`, `deals`, `tickets`, another standard
    /// object, or a custom object by name, `2-NNN` id or fully qualified name.
    pub object: String,
    /// `upsert` (create or update), `update` (only records already in HubSpot) or `create`
    /// (only records not yet in HubSpot).
    #[serde(default)]
    pub mode: SyncMode,
    /// How a row finds its HubSpot record the first time; afterwards the learned id is used.
    #[serde(rename = "match")]
    pub match_on: MatchConfig,
    /// Model column -> HubSpot property.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Links from each synced record to other HubSpot records (`[[syncs.associations]]`).
    /// Links are only added, unless the rule sets `remove_stale`.
    #[serde(default)]
    pub associations: Vec<AssociationConfig>,
    /// Keep a static (MANUAL) list of the synced records: `list = true` names it after the
    /// sync, `list = { name = "..." }` gives its name. Records whose rows leave the model are
    /// removed from it.
    pub list: Option<ListConfig>,
    /// When `hubsync run` starts this sync on its own, e.g. `{ cron = "*/15 * * * *" }` or
    /// `{ interval_secs = 300 }`. Without it the sync runs only when triggered.
    pub schedule: Option<ScheduleConfig>,
    /// Consent to keep hubsync's own unique key property on the object (not on contacts):
    /// `hubsync_key` (`hasUniqueValue: true`, in a property group `hubsync`), created on the
    /// first run that needs it. Used only when `match.property` is not unique: rows not found
    /// by search are then upserted by `hubsync_key` (`<sync name>:<primary key>`) instead of
    /// created, so a re-send after an error or a crash cannot duplicate a record. Needs the
    /// object's `crm.schemas.*.write` scope to create it; without it hubsync falls back to
    /// journaled creates. Default `false`: it changes the portal's schema.
    #[serde(default)]
    pub unique_key_property: bool,
    /// What happens to a record whose row left the model: `"nothing"` (the default), `"clear"`
    /// (empty the mapped properties, keep the record) or `"archive"` (HubSpot's batch archive).
    #[serde(default)]
    pub on_delete: super::OnDelete,
    /// The delete guard: a run that would archive, clear, unlink or unlist more records than
    /// this sends none of those removals (everything else still goes). A count (`500`) or a
    /// share of the snapshot (`"10%"`, the default).
    pub max_deletes: Option<toml::Value>,
}

/// One association rule: each row's `column` names records of object `to`, found by their
/// `match` property.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssociationConfig {
    /// The associated object type: a standard object or a custom object.
    pub to: String,
    /// A HubSpot-defined association type by name (e.g. `contact_to_company` for the primary
    /// company) or numeric id; omitted for the pair's default (unlabeled) type. Labels given in
    /// the column's `{ value, label }` objects override it.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// Model column holding the value(s) to match: one value, an array, a comma-separated list,
    /// or `{ value, label }` objects (or an array of them) to set labels.
    pub column: String,
    /// Property of the associated object to find it by (e.g. `name`, `domain`, `email`).
    #[serde(rename = "match")]
    pub match_property: String,
    /// Remove the links hubsync made under this rule once a row's value no longer asks for
    /// them (its value changed or its row left the model). Links made by anyone else are never
    /// removed. Default `false`: links are only added.
    #[serde(default)]
    pub remove_stale: bool,
}

/// `list = true` or `list = { name = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ListConfig {
    Enabled(bool),
    Named(NamedList),
}

/// A list with an explicit name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedList {
    /// The list's name in HubSpot (list names are unique in a portal).
    pub name: String,
}

/// What a sync may do to HubSpot records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Create records that are missing and update the others.
    #[default]
    Upsert,
    /// Update records already in HubSpot; rows without a record are skipped and counted.
    Update,
    /// Create records not yet in HubSpot; rows whose record exists are skipped and counted.
    Create,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Upsert => "upsert",
            SyncMode::Update => "update",
            SyncMode::Create => "create",
        }
    }
}

/// The record-matching rule: a model column compared with a HubSpot property.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Model column holding the value to match.
    pub column: String,
    /// HubSpot property to match it against, e.g. `email`, `domain` or a unique `external_id`.
    pub property: String,
}
