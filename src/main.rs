//! The `hubsync` command line. Every command lives in `hubsync::cli`; this file only parses.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hubsync::cli::{self, CliError};

/// hubsync keeps HubSpot in step with SQL models in your warehouse: it runs each sync's model,
/// diffs the rows against what HubSpot already acknowledged, and sends only what changed.
#[derive(Parser, Debug)]
#[command(name = "hubsync", version, about, long_about = None, propagate_version = true)]
struct Args {
    /// Config file (TOML).
    #[arg(long, short = 'c', global = true, env = "HUBSYNC_CONFIG", default_value = "hubsync.toml")]
    config: PathBuf,

    /// Log filter, e.g. `info`, `debug` or `hubsync=debug` (RUST_LOG also works); `info` for
    /// `run` and the emulator, `warn` for the other commands by default.
    #[arg(long, global = true, env = "HUBSYNC_LOG")]
    log: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the config, every sync's model and its HubSpot mappings, without sending anything.
    Validate,
    /// Show what a sync would send now: counts per operation and sample field changes.
    Plan {
        /// The sync to plan.
        sync: String,
        /// Plan a full resync: every row, not only the changed ones.
        #[arg(long)]
        full: bool,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run syncs once now, in this process. SIGTERM or Ctrl-C cancels a running warehouse
    /// query, or lets the requests in flight be answered and committed, and exits 0; a second
    /// one exits at once.
    Sync {
        /// The syncs to run (all of them with --all).
        syncs: Vec<String>,
        /// Run every configured sync.
        #[arg(long, conflicts_with = "syncs")]
        all: bool,
        /// Send every row, not only the changed ones.
        #[arg(long)]
        full: bool,
        /// Send again the records HubSpot refused for their values (an invalid e-mail, a value
        /// too long) although their rows did not change; by default they wait for a change.
        #[arg(long)]
        retry_rejected: bool,
        /// Send the removals the delete guard would hold: more records archived, cleared,
        /// unlinked or removed from the list than `max_deletes` allows, or a model that returned
        /// no rows. Without it such a run sends everything else and exits with code 3.
        #[arg(long)]
        allow_deletes: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the last runs of each sync, their counts and the records HubSpot rejected.
    Status {
        /// Only this sync.
        sync: Option<String>,
        /// How many runs and rejected records to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// Ask a running daemon (e.g. http://127.0.0.1:8484) instead of reading the state files.
        #[arg(long, value_name = "URL")]
        daemon: Option<String>,
    },
    /// Run every sync on its schedule and serve the admin API and /metrics, until SIGTERM or
    /// SIGINT (the first stops after the requests in flight are answered, a second exits at once).
    Run {
        /// Admin API address (IP:port); overrides `daemon.listen` in the config.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Ask a running daemon to run a sync now (`hubsync sync` runs it in this process instead).
    Trigger {
        /// The sync to run.
        sync: String,
        /// Send every row, not only the changed ones.
        #[arg(long)]
        full: bool,
        /// Send the removals the delete guard would hold, as `hubsync sync` does with this flag.
        #[arg(long)]
        allow_deletes: bool,
        /// Follow the run to its end; exit non-zero if it did not succeed (3 when the delete
        /// guard held its removals).
        #[arg(long)]
        wait: bool,
        /// The daemon's URL; by default the config's `daemon.listen`.
        #[arg(long, value_name = "URL", env = "HUBSYNC_DAEMON_URL")]
        daemon: Option<String>,
    },
    /// List the properties of a sync's HubSpot object (name, type, unique, read-only).
    Fields {
        /// The sync whose object to list.
        sync: String,
    },
    /// Forget what a sync delivered, so its next run compares against nothing (ids are kept).
    Reset {
        /// The sync to reset.
        sync: String,
    },
    /// Run the demo: a sample DuckDB warehouse, a local HubSpot emulator, and real syncs.
    Demo {
        /// Folder for the demo's warehouse, config and state: a new or empty folder, or one an
        /// earlier demo made (marked by its `.hubsync-demo` file), which is recreated.
        #[arg(long, default_value = "hubsync-demo")]
        dir: PathBuf,
        /// Contacts in the sample warehouse.
        #[arg(long, default_value_t = 3000)]
        contacts: u32,
        /// Milliseconds the emulator takes to answer each request, as real HubSpot takes
        /// hundreds of milliseconds for a batch write; `0` answers at once.
        #[arg(long, value_name = "MS", default_value_t = cli::DEMO_LATENCY_MS)]
        latency_ms: u64,
    },
    /// Store, sign in with, or show the credentials of HubSpot accounts.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Run the local HubSpot emulator, to rehearse syncs without touching a real portal.
    Emulator(hubspot_emulator::EmulatorArgs),
    /// Measure hubsync against the limits of the job: on a synthetic PostgreSQL model, the first
    /// sync, a run with no change and a run after 1% changed, against the floor (`COPY` to
    /// nowhere), then a rate-limited run. Prints Markdown tables, writes JSON. See BENCHMARKS.md.
    Bench(cli::BenchOptions),
}

#[derive(Subcommand, Debug)]
enum AuthCommand {
    /// Store a private app or service key token for an account, read from stdin (so it never
    /// shows in `ps`), in `<state_dir>/credentials/` with mode 0600.
    Token {
        /// The account (`[hubspot.NAME]` in the config).
        #[arg(long)]
        account: String,
    },
    /// Sign in to an account with OAuth: prints a link to HubSpot's consent page for the scopes
    /// the account's syncs need, waits for HubSpot to send the browser back to the loopback
    /// `redirect_uri`, and stores the tokens (mode 0600), replacing any stored private app token.
    Login {
        /// The account (`[hubspot.NAME]` in the config, with `client_id` and `client_secret`).
        #[arg(long)]
        account: String,
        /// Seconds to wait for the browser to come back.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Show, per account, which kind of credential is in use, its portal and its scopes (never
    /// a token).
    Status,
}

fn main() -> ExitCode {
    hubsync::tune_allocator();
    let args = Args::parse();
    let default_log = match args.command {
        Command::Run { .. } | Command::Emulator(_) => "info",
        _ => "warn",
    };
    cli::init_logging(args.log.as_deref().unwrap_or(default_log));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = args.config;
    let result: Result<(), CliError> = runtime.block_on(async move {
        match args.command {
            Command::Validate => cli::validate(&config).await,
            Command::Plan { sync, full, json } => cli::plan(&config, &sync, full, json).await,
            Command::Sync { syncs, all, full, retry_rejected, allow_deletes, json } => {
                cli::sync(&config, &syncs, all, cli::SyncFlags { full, retry_rejected, allow_deletes, json }).await
            }
            Command::Status { sync, json, daemon: Some(url), .. } => {
                cli::daemon_status(&config, &url, sync.as_deref(), json).await
            }
            Command::Status { sync, limit, json, daemon: None } => cli::status(&config, sync.as_deref(), limit, json),
            Command::Run { listen } => cli::run(&config, listen.as_deref()).await,
            Command::Trigger { sync, full, allow_deletes, wait, daemon } => {
                cli::trigger(&config, &sync, full, allow_deletes, wait, daemon.as_deref()).await
            }
            Command::Fields { sync } => cli::fields(&config, &sync).await,
            Command::Reset { sync } => cli::reset(&config, &sync),
            Command::Demo { dir, contacts, latency_ms } => cli::demo(&dir, contacts, latency_ms).await,
            Command::Auth(AuthCommand::Token { account }) => cli::auth_token(&config, &account),
            Command::Auth(AuthCommand::Login { account, timeout }) => cli::auth_login(&config, &account, timeout).await,
            Command::Auth(AuthCommand::Status) => cli::auth_status(&config).await,
            Command::Bench(options) => cli::bench(&options).await,
            Command::Emulator(emulator_args) => {
                hubspot_emulator::run_cli(emulator_args).await.map_err(|e| CliError::Failed(format!("{e:#}")))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
