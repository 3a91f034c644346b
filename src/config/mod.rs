//! The user's configuration: inert, documented data read from TOML (`model.rs`), `${VAR}`
//! interpolation (`interpolate.rs`), and the checks that turn it into a [`Config`] (`load.rs`).

mod daemon;
mod interpolate;
mod load;
mod model;


pub use daemon::DaemonSettings;
pub use load::{Config, ConfigError, Problem, SyncSpec};
pub use model::{
    AssociationConfig, ConfigFile, DaemonConfig, HubSpotAccountConfig, ListConfig, MatchConfig, NamedList,
    ScheduleConfig, SyncConfig, SyncMode, WarehouseConfig,
};
pub use hubspot_model::Secret;
