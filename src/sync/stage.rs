//! Staging and diff: the model is read twice in one warehouse snapshot. Every row's key and
//! hash stream into the state store's staging file (`state/staging.rs`), the diff is SQL (or
//! nothing at all when the rows sum to the snapshot's), and only the changed rows' values are
//! read again into `changes`, which delivery and `plan` read back a page at a time.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::blocking::blocking;
use super::options::{PeakRss, Phases};
use super::SyncError;
use crate::config::{Config, SyncSpec};
use crate::source::{row_hash_seed, select_columns, ColumnInfo, Source};
use crate::state::{RunCounts, StateStore};

/// The model columns a sync reads, in staging order: key, match column, then one per property.
/// Association columns follow the properties.
pub(crate) fn staged_columns(sync: &SyncSpec) -> (Vec<String>, Vec<String>) {
    let mut columns = vec![sync.primary_key.clone(), sync.match_on.column.clone()];
    let mut props = Vec::new();
    for (column, property) in &sync.fields {
        columns.push(column.clone());
        props.push(property.clone());
    }
    columns.extend(sync.associations.iter().map(|a| a.column.clone()));
    (columns, props)
}

/// Connects to the sync's warehouse.
pub(crate) async fn connect_source(config: &Config, sync: &SyncSpec) -> Result<Source, SyncError> {
    let warehouse = config.warehouses.get(&sync.warehouse).ok_or_else(|| SyncError::Config {
        sync: sync.name.clone(),
        key: format!("{}.warehouse", sync.key),
        message: format!("warehouse `{}` is not defined", sync.warehouse),
    })?;
    Ok(Source::connect(&sync.warehouse, warehouse).await?)
}

/// What staging the model found, for the rest of the run.
pub(crate) struct Staged {
    /// The property names, in staging order.
    pub props: Vec<String>,
    /// Per association: whether some row of the model uses `{ value, label }` objects.
    pub label_objects: Vec<bool>,
    /// The time of the reads and the diff, and how the second read went.
    pub phases: Phases,
}

/// The second read pushes the changed keys into the warehouse query when at most this share of
/// the rows is wanted; above it, scanning the model and picking rows by key hash costs less
/// than sending most keys to the warehouse to join them there.
const PUSH_KEYS_MAX_SHARE: f64 = 0.5;
/// Keys sent to the warehouse at a time.
const KEY_PAGE: usize = 10_000;

/// The seed of a sync's row hashes: a row's hash changes when its values change, and when the
/// sync maps its columns differently.
fn row_seed(columns: &[ColumnInfo], props: &[String]) -> u64 {
    let mut parts = vec!["hubsync row hash 1".to_string()];
    parts.extend(columns.iter().map(|c| format!("{}:{:?}", c.name, c.kind)));
    parts.extend(props.iter().cloned());
    row_hash_seed(&parts.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Reads the model and diffs it against the snapshot, leaving the rows to send in `changes`.
///
/// The model is read twice in one warehouse snapshot. The first read stages every row's key
/// and hash only (the values are hashed as they stream and dropped), which is all the diff
/// needs; the second reads the values of the changed rows (and of rows whose associations
/// failed before), and happens only when there are some. A run with nothing to send costs one
/// streaming read and a comparison of two sums.
pub(crate) async fn stage_and_diff(
    config: &Config,
    sync: &SyncSpec,
    store: &mut StateStore,
    full: bool,
    retry_rejected: bool,
    counts: &mut RunCounts,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Staged, SyncError> {
    // `stop` cancels the warehouse query on a shutdown.
    let source = connect_source(config, sync).await?.with_stop(stop);
    let described = source.describe(&sync.name, &sync.model_sql).await?;
    let (wanted, props) = staged_columns(sync);
    let mut columns = select_columns(&sync.name, &described, &wanted)?;
    let first_link = 2 + props.len();
    for column in columns.iter_mut().skip(first_link) {
        column.kind = column.kind.for_links();
    }
    let seed = row_seed(&columns, &props);
    let links = sync.associations.len();

    let source = Arc::new(source);
    let mut phases = Phases::default();
    source.begin_snapshot(&sync.name).await?;
    let read = read_twice(&source, sync, store, &columns, seed, (full, retry_rejected), counts, &mut phases).await;
    let ended = source.end_snapshot(&sync.name).await;
    let label_objects = read?;
    ended?;
    let started = Instant::now();
    let changed = blocking(|| store.build_changes(&props, links))?;
    phases.diff_secs += started.elapsed().as_secs_f64();
    phases.peak_rss_mb.changes = PeakRss::now();
    counts.unchanged = counts.rows_read - counts.invalid - counts.held - changed;
    tracing::info!(rows = counts.rows_read, invalid = counts.invalid, changed, "Model diffed against the snapshot.");
    Ok(Staged { props, label_objects, phases })
}

/// The two reads of `stage_and_diff`; returns which associations use label objects.
#[allow(clippy::too_many_arguments)]
async fn read_twice(
    source: &Arc<Source>,
    sync: &SyncSpec,
    store: &mut StateStore,
    columns: &[ColumnInfo],
    seed: u64,
    (full, retry_rejected): (bool, bool),
    counts: &mut RunCounts,
    phases: &mut Phases,
) -> Result<Vec<bool>, SyncError> {
    let started = Instant::now();
    let first_link = columns.len() - sync.associations.len();
    blocking(|| store.create_staging())?;
    // The reader runs on its own task, so parsing and hashing overlap with appending.
    let (tx, mut rx) = mpsc::channel(4);
    let reader = {
        let (source, name, sql, columns) =
            (source.clone(), sync.name.clone(), sync.model_sql.clone(), columns.to_vec());
        tokio::spawn(async move { source.stream_keys(&name, &sql, &columns, first_link, seed, tx).await })
    };
    let mut next_rownum = 1i64;
    let mut label_objects = vec![false; sync.associations.len()];
    let mut written = Ok(());
    while let Some(chunk) = rx.recv().await {
        written = blocking(|| store.append_staging(next_rownum, &chunk.keys));
        if written.is_err() {
            break;
        }
        next_rownum += chunk.keys.len() as i64;
        for (seen, now) in label_objects.iter_mut().zip(&chunk.label_objects) {
            *seen |= *now;
        }
    }
    drop(rx);
    let read = reader.await.map_err(|e| reader_stopped(sync, e))?;
    written?;
    counts.rows_read = read?;
    phases.read1_secs = started.elapsed().as_secs_f64();
    phases.peak_rss_mb.read1 = PeakRss::now();
    let started = Instant::now();
    let totals = blocking(|| store.diff_keys(full, retry_rejected))?;
    counts.invalid = totals.invalid;
    counts.held = totals.held;

    let links = !sync.associations.is_empty();
    let wanted = blocking(|| store.wanted_count(links))?;
    blocking(|| store.create_staging_rows(columns.len()))?;
    phases.diff_secs = started.elapsed().as_secs_f64();
    phases.peak_rss_mb.diff = PeakRss::now();
    if wanted == 0 {
        return Ok(label_objects);
    }
    let started = Instant::now();
    let push = wanted as f64 <= counts.rows_read as f64 * PUSH_KEYS_MAX_SHARE;
    let pushed = push
        && blocking(|| store.prepare_wanted_keys(links))? > 0
        && push_keys(source, sync, store, &columns[0]).await?;
    let (tx, mut rx) = mpsc::channel(4);
    let reader = {
        let (source, name, sql, columns) =
            (source.clone(), sync.name.clone(), sync.model_sql.clone(), columns.to_vec());
        if pushed {
            tokio::spawn(async move { source.stream_loaded(&name, &sql, &columns, tx).await })
        } else {
            let wanted = Arc::new(blocking(|| store.wanted_keys(links))?);
            tokio::spawn(async move { source.stream_filtered(&name, &sql, &columns, wanted, tx).await })
        }
    };
    let mut next_rownum = 1i64;
    let mut written = Ok(());
    while let Some(chunk) = rx.recv().await {
        written = blocking(|| store.append_staging_rows(next_rownum, &chunk));
        if written.is_err() {
            break;
        }
        next_rownum += chunk.len() as i64;
    }
    drop(rx);
    let read = reader.await.map_err(|e| reader_stopped(sync, e))?;
    written?;
    phases.read2_rows = read?;
    phases.read2_pushed_keys = pushed;
    phases.read2_secs = started.elapsed().as_secs_f64();
    phases.peak_rss_mb.read2 = PeakRss::now();
    tracing::info!(
        wanted,
        received = phases.read2_rows,
        pushed_keys = pushed,
        "Second read: the changed rows' values."
    );
    Ok(label_objects)
}

/// Sends the keys of the rows the second read wants to the warehouse, a page at a time, so it
/// can join them with the model. Returns false when the warehouse cannot hold them.
async fn push_keys(
    source: &Arc<Source>,
    sync: &SyncSpec,
    store: &mut StateStore,
    key: &ColumnInfo,
) -> Result<bool, SyncError> {
    let (tx, rx) = mpsc::channel(2);
    let loader = {
        let (source, name, key) = (source.clone(), sync.name.clone(), key.clone());
        tokio::spawn(async move { source.load_keys(&name, &key, rx).await })
    };
    let mut after = 0i64;
    let mut read = Ok(());
    loop {
        match blocking(|| store.wanted_keys_page(after, KEY_PAGE)) {
            Err(e) => {
                read = Err(e);
                break;
            }
            Ok(page) if page.is_empty() => break,
            Ok(page) => {
                after += page.len() as i64;
                // A warehouse that cannot hold keys hung up: it reads none.
                if tx.send(page).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let loaded = loader.await.map_err(|e| reader_stopped(sync, e))?;
    read?;
    Ok(loaded?)
}

/// The reading task panicked or was cancelled.
fn reader_stopped(sync: &SyncSpec, e: tokio::task::JoinError) -> SyncError {
    SyncError::Source(crate::source::SourceError::Query {
        sync: sync.name.clone(),
        warehouse: sync.warehouse.clone(),
        message: format!("the reading task stopped: {e}"),
    })
}
