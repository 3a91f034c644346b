//! The local HubSpot emulator: the test bed for every feature of hubsync, and the portal
//! users rehearse their syncs against (`hubsync emulator`).
//!
//! It serves the CRM objects, search, properties, schemas, associations v4, lists v3 and
//! OAuth endpoints on both path families (dated `/crm/objects/2026-03/...` and legacy
//! `/crm/v3/...`, `/crm/v4/...`), and behaves as HubSpot documents and as recorded real
//! traffic shows (HubSpot docs and recorded real answers, docs/emulator.md): shuffled batch results, 207 partial results keyed by
//! `objectWriteTraceId`, HubSpot's error bodies, scopes, rate limits and their headers, search
//! index lag, and injected faults. Tests start it in-process on a random port and read what
//! it holds, and the journal of requests it received, through [`Emulator`].
//!
//! Files: `config.rs` (options and the CLI), `store/` (the data), `routes/` (HTTP handlers),
//! `auth.rs` (tokens and scopes), `limits.rs` (rate limits and faults), `journal.rs`,
//! `inspect.rs` (read-only `/_emulator/` endpoints: the journal and counts, for a separate
//! process), `reply.rs` (answers and error bodies), `server.rs` (the accept loop).

mod auth;
mod clock;
mod config;
mod inspect;
mod journal;
mod limits;
mod reply;
mod routes;
mod server;
mod store;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    parse_oauth_client, parse_static_token, EmulatorArgs, EmulatorConfig, FaultConfig, OAuthClient, StaticToken,
    DEFAULT_MAX_REQUESTS_PER_10S,
};
pub use journal::{in_flight_at, peak_in_flight, JournalEntry};
pub use store::EmRecord;

use journal::Journal;
use limits::Limits;
use store::properties::PropertyCreate;
use store::Store;

/// An association between two records as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmAssociation {
    pub from_id: String,
    pub to_id: String,
    /// Association type ids, ascending.
    pub type_ids: Vec<u32>,
    /// The label of each type id (`None` for unlabeled types), in the same order.
    pub labels: Vec<Option<String>>,
}

/// A list as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmList {
    pub list_id: String,
    pub name: String,
    pub object_type_id: String,
    /// `MANUAL`, `DYNAMIC` or `SNAPSHOT`.
    pub processing_type: String,
}

/// What the request handlers share.
pub(crate) struct Shared {
    pub config: EmulatorConfig,
    pub store: Mutex<Store>,
    pub limits: Limits,
    pub journal: Journal,
}

/// A running emulator. Dropping it stops the server; [`Emulator::shutdown`] also waits for
/// open connections to finish.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds 127.0.0.1 (port 0 = a free port) and starts serving.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await.with_context(|| {
            format!("could not listen on 127.0.0.1:{}; is the port in use? Try --port 0", config.port)
        })?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(
                config.portal_id,
                config.seed,
                config.shuffle_results,
                config.search_index_lag_ms,
            )),
            limits: Limits::new(&config),
            journal: Journal::new(config.journal_capacity),
            config,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, shared.clone(), stopped));
        Ok(Emulator { shared, addr, stop, task: Some(task) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Changes the injected faults; `burst_429` restarts its count.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.limits.set_faults(faults);
    }

    /// Changes the burst limit (per app, per rolling 10 s) and empties the windows.
    pub fn set_rate_limit(&self, max_requests_per_10s: Option<u32>) {
        self.shared.limits.set_rate_limit(max_requests_per_10s);
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live (not archived) records of a type, in id order. `object_type` is any name
    /// HubSpot accepts: `contacts`, `contact`, `0-1`, a custom object's name, `p_name`,
    /// fully qualified name or `2-NNN`. Unknown types hold no records.
    pub fn records(&self, object_type: &str) -> Vec<EmRecord> {
        let store = self.store();
        let Some(i) = store.resolve(object_type) else { return Vec::new() };
        let t = store.object_type(i);
        t.records.values().filter(|r| !r.archived).map(|r| t.to_em_record(r)).collect()
    }

    pub fn record_count(&self, object_type: &str) -> usize {
        let store = self.store();
        store
            .resolve(object_type)
            .map(|i| store.object_type(i).records.values().filter(|r| !r.archived).count())
            .unwrap_or(0)
    }

    /// Live records whose `property` equals `value` (case-insensitive for contact email).
    pub fn find_by_property(&self, object_type: &str, property: &str, value: &str) -> Vec<EmRecord> {
        let store = self.store();
        let Some(i) = store.resolve(object_type) else { return Vec::new() };
        let t = store.object_type(i);
        let wanted = t.unique_key(property, value);
        t.records
            .values()
            .filter(|r| !r.archived && r.get(property).is_some_and(|v| t.unique_key(property, v) == wanted))
            .map(|r| t.to_em_record(r))
            .collect()
    }

    /// Inserts a record directly, for test set-up, and returns its id. The values are checked
    /// as the API would check them.
    ///
    /// # Panics
    /// On an unknown object type, an invalid property, or a unique value already in use:
    /// set-up mistakes a test should hear about at once.
    pub fn insert_record(&self, object_type: &str, properties: &[(&str, &str)]) -> String {
        let mut store = self.store();
        let i =
            store.resolve(object_type).unwrap_or_else(|| panic!("insert_record: unknown object type {object_type}"));
        let input = properties.iter().map(|(k, v)| (Cow::Borrowed(*k), Some(Cow::Borrowed(*v)))).collect();
        let t = store.object_type(i);
        let changes = t.check(input, None).unwrap_or_else(|e| panic!("insert_record: invalid properties: {e:?}"));
        if let Some(c) = t.conflict(&changes, None) {
            panic!("insert_record: {} {} is already used by record {}", c.property, c.value, c.existing_id);
        }
        let id = store.next_id();
        let lag = store.index_lag_ms;
        store.object_type_mut(i).create(id, changes, clock::now_ms(), lag);
        id.to_string()
    }

    /// Merges record `merged_id` into `primary_id`, as `POST /crm/v3/objects/{type}/merge`
    /// does: the merged-away id reads and updates the survivor from then on, and batch
    /// updates leave it out of their answers.
    ///
    /// # Panics
    /// On an unknown type or when either record does not exist.
    pub fn merge_records(&self, object_type: &str, primary_id: &str, merged_id: &str) {
        let mut store = self.store();
        let i =
            store.resolve(object_type).unwrap_or_else(|| panic!("merge_records: unknown object type {object_type}"));
        let id = |s: &str| s.trim().parse::<u64>().unwrap_or_else(|_| panic!("merge_records: {s} is not a record id"));
        if let Err(e) = store.merge(i, id(primary_id), id(merged_id), clock::now_ms()) {
            panic!("merge_records: {e:?}");
        }
    }

    /// Archives (deletes) a record, as `DELETE /crm/v3/objects/{type}/{id}` does: it leaves
    /// reads, searches, its associations and its list memberships. Returns false when no live
    /// record has the id.
    ///
    /// # Panics
    /// On an unknown object type.
    pub fn archive_record(&self, object_type: &str, id: &str) -> bool {
        let mut store = self.store();
        let i =
            store.resolve(object_type).unwrap_or_else(|| panic!("archive_record: unknown object type {object_type}"));
        let Ok(id) = id.trim().parse::<u64>() else { return false };
        routes::writes::archive_record(&mut store, i, id, clock::now_ms())
    }

    /// Deletes a list, as `DELETE /crm/v3/lists/{listId}` does. Returns false when there is no
    /// such list.
    pub fn delete_list(&self, list_id: &str) -> bool {
        let mut store = self.store();
        list_id.trim().parse::<u64>().is_ok_and(|id| store.lists.delete(id))
    }

    /// Renames a list, as `PUT /crm/v3/lists/{listId}/update-list-name` does. Returns false
    /// when there is no such list or the name is taken.
    pub fn rename_list(&self, list_id: &str, name: &str) -> bool {
        let mut store = self.store();
        list_id
            .trim()
            .parse::<u64>()
            .is_ok_and(|id| store.lists.get(id).is_some() && store.lists.rename(id, name, clock::now_ms()).is_ok())
    }

    /// Every association from records of `from_type` to records of `to_type`.
    pub fn associations(&self, from_type: &str, to_type: &str) -> Vec<EmAssociation> {
        let store = self.store();
        let (Some(from), Some(to)) = (store.type_id_of(from_type), store.type_id_of(to_type)) else {
            return Vec::new();
        };
        store
            .associations
            .all_links(&from, &to)
            .into_iter()
            .map(|(f, t, type_ids)| EmAssociation {
                from_id: f.to_string(),
                to_id: t.to_string(),
                labels: type_ids
                    .iter()
                    .map(|id| store.associations.get_type(*id).and_then(|t| t.label.clone()))
                    .collect(),
                type_ids,
            })
            .collect()
    }

    /// The list with this name (case-insensitive), if any.
    pub fn list_by_name(&self, name: &str) -> Option<EmList> {
        let store = self.store();
        store.lists.by_name(name).map(|l| EmList {
            list_id: l.id.to_string(),
            name: l.name.clone(),
            object_type_id: l.object_type_id.clone(),
            processing_type: l.processing_type.clone(),
        })
    }

    /// The record ids in a list, ascending.
    pub fn list_members(&self, list_id: &str) -> Vec<String> {
        let store = self.store();
        list_id
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|id| store.lists.get(id))
            .map(|l| l.members.keys().map(u64::to_string).collect())
            .unwrap_or_default()
    }

    /// The property definitions of a type, as `GET /crm/v3/properties/{type}` returns them.
    pub fn properties(&self, object_type: &str) -> Vec<Value> {
        let store = self.store();
        let Some(i) = store.resolve(object_type) else { return Vec::new() };
        store.object_type(i).properties().filter(|p| !p.archived).map(|p| p.to_json()).collect()
    }

    /// Creates a property from the same body as `POST /crm/v3/properties/{type}`.
    ///
    /// # Panics
    /// On an unknown type or an invalid or duplicate definition.
    pub fn create_property(&self, object_type: &str, property: Value) {
        let mut store = self.store();
        let i =
            store.resolve(object_type).unwrap_or_else(|| panic!("create_property: unknown object type {object_type}"));
        let body: PropertyCreate =
            serde_json::from_value(property).unwrap_or_else(|e| panic!("create_property: bad property body: {e}"));
        let group = store.object_type(i).properties().next().map(|p| p.group_name.clone()).unwrap_or_default();
        let def = body.build(clock::now_ms(), &group, false).unwrap_or_else(|e| panic!("create_property: {e}"));
        if store.object_type(i).property(&def.name).is_some() {
            panic!("create_property: property {} already exists", def.name);
        }
        store.object_type_mut(i).add_property(def);
    }

    /// Creates a custom object from the same body as `POST /crm-object-schemas/v3/schemas`
    /// and returns its `objectTypeId` (`2-NNN`).
    ///
    /// # Panics
    /// On an invalid schema or a name already in use.
    pub fn create_custom_object(&self, schema: Value) -> String {
        let mut store = self.store();
        match routes::properties::create_schema(&mut store, schema, clock::now_ms()) {
            Ok(i) => store.object_type(i).type_id.clone(),
            Err(reply) => panic!("create_custom_object: {}", String::from_utf8_lossy(&reply.body)),
        }
    }

    /// Creates a USER_DEFINED association label between two types and returns its type id
    /// (`from → to`; the inverse gets its own id).
    ///
    /// # Panics
    /// On an unknown type or when the label exists.
    pub fn create_association_label(&self, from_type: &str, to_type: &str, label: &str) -> u32 {
        let mut store = self.store();
        let from = store.type_id_of(from_type).unwrap_or_else(|| panic!("unknown object type {from_type}"));
        let to = store.type_id_of(to_type).unwrap_or_else(|| panic!("unknown object type {to_type}"));
        let name: String =
            label.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        match store.associations.create_label(&from, &to, label, &name, None) {
            Ok((forward, _)) => forward,
            Err(e) => panic!("create_association_label: {e:?}"),
        }
    }

    /// Makes every OAuth access token issued so far expired now, as if its 30 minutes had
    /// passed: the next request with one is answered 401 `EXPIRED_AUTHENTICATION`.
    pub fn expire_access_tokens(&self) {
        let now = clock::now_ms();
        for token in self.store().tokens.access.values_mut() {
            token.expires_at = token.expires_at.min(now - 1000);
        }
    }

    /// Revokes every refresh token issued so far (the user uninstalled the app, or an admin
    /// revoked it): refreshing with one is answered 400 `BAD_REFRESH_TOKEN`.
    pub fn revoke_refresh_tokens(&self) {
        self.store().tokens.refresh.clear();
    }

    /// Every request received so far (up to the journal's capacity), oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.journal.entries()
    }

    pub fn clear_journal(&self) {
        self.shared.journal.clear();
    }

    /// Requests with this method (case-insensitive) whose path contains `path_contains`.
    pub fn count_requests(&self, method: &str, path_contains: &str) -> usize {
        self.shared.journal.count(|e| e.method.eq_ignore_ascii_case(method) && e.path.contains(path_contains))
    }

    /// Bodies of the requests whose method matches and whose path contains `path_contains`
    /// (recorded only with `EmulatorConfig::record_bodies`).
    pub fn request_bodies(&self, method: &str, path_contains: &str) -> Vec<String> {
        self.shared
            .journal
            .entries()
            .into_iter()
            .filter(|e| e.method.eq_ignore_ascii_case(method) && e.path.contains(path_contains))
            .filter_map(|e| e.body)
            .collect()
    }

    /// The most requests that were in flight at the emulator at one moment, over the journal
    /// (see [`peak_in_flight`]).
    pub fn peak_in_flight(&self) -> usize {
        peak_in_flight(&self.shared.journal.entries())
    }

    /// Requests answered with this status (`0` = dropped connections).
    pub fn count_status(&self, status: u16) -> usize {
        self.shared.journal.count(|e| e.status == status)
    }

    /// Stops accepting, lets open requests finish, and waits for the server to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// `hubsync emulator`: starts the emulator, says where it listens, and runs until SIGINT or
/// SIGTERM.
pub async fn run_cli(args: EmulatorArgs) -> anyhow::Result<()> {
    let emulator = Emulator::start(EmulatorConfig::from(args)).await?;
    println!("HubSpot emulator listening on {}", emulator.base_url());
    tracing::info!(url = %emulator.base_url(), portal_id = emulator.config().portal_id, "HubSpot emulator started.");
    wait_for_stop_signal().await;
    tracing::info!("HubSpot emulator stopping.");
    emulator.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    #[test]
    fn cli_defaults_match_hubspot() {
        let cli =
            Cli::try_parse_from(["hubsync", "--token", "pat-1:crm.lists.read", "--no-shuffle", "--error-rate", "0.1"])
                .unwrap();
        let config = EmulatorConfig::from(cli.args);
        assert_eq!(config.port, 8080);
        assert_eq!(config.search_requests_per_sec, Some(5));
        assert_eq!(config.max_requests_per_10s, Some(100));
        assert!(!config.shuffle_results);
        assert_eq!(config.faults.error_rate, 0.1);
        assert_eq!(config.faults.error_after_write_rate, 0.0);
        assert_eq!(config.static_tokens[0].scopes, vec!["crm.lists.read"]);
        let off =
            Cli::try_parse_from(["hubsync", "--search-requests-per-sec", "0", "--max-requests-per-10s", "0"]).unwrap();
        let off = EmulatorConfig::from(off.args);
        assert_eq!(off.search_requests_per_sec, None);
        assert_eq!(off.max_requests_per_10s, None);
        let after =
            Cli::try_parse_from(["hubsync", "--error-after-write-rate", "0.2", "--drop-after-write-rate", "0.05"])
                .unwrap();
        let after = EmulatorConfig::from(after.args).faults;
        assert_eq!((after.error_after_write_rate, after.drop_after_write_rate), (0.2, 0.05));
    }
}
