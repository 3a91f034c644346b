//! The user's configuration: inert, documented data read from TOML (`model.rs`; the
//! warehouses in `warehouse.rs`), `${VAR}`
//! interpolation (`interpolate.rs`), and the checks that turn it into a [`Config`] (`load.rs`).

mod daemon;
mod delete_guard;
mod interpolate;
mod load;
mod model;
mod model_text;
mod problem;
mod schedule;
mod warehouse;

pub use daemon::DaemonSettings;
pub use delete_guard::{DeleteLimit, OnDelete, DEFAULT_MAX_DELETES};
pub use hubspot_model::Secret;
pub use load::{Config, SyncSpec};
pub use model::{
    AssociationConfig, ConfigFile, DaemonConfig, HubSpotAccountConfig, ListConfig, MatchConfig, NamedList,
    ScheduleConfig, SyncConfig, SyncMode, DEFAULT_SEARCH_INDEX_LAG_SECS, DEFAULT_STATE_MEMORY_MB, MIN_STATE_MEMORY_MB,
};
pub use problem::{ConfigError, Problem};
pub use schedule::{parse_timezone, Schedule};
pub use warehouse::{
    DuckDbConfig, PostgresConfig, WarehouseConfig, DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_QUERY_TIMEOUT_SECS,
};
