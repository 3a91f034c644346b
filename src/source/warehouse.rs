//! The seam every warehouse sits behind. A warehouse runs a model and streams its rows, already
//! turned into HubSpot's text values; [`super::Source`] wraps one and is what the rest of
//! hubsync holds. A new warehouse is one file implementing [`Warehouse`], its config variant,
//! and one line in `Source::connect`.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::hash::KeySet;
use super::kinds::ColumnInfo;
use super::{KeyChunk, Row, SourceError};

/// The first read of a run: what to read and how to hash it.
#[derive(Debug, Clone, Copy)]
pub struct KeyRead<'a> {
    pub sync: &'a str,
    pub sql: &'a str,
    /// The staged columns, the key first.
    pub columns: &'a [ColumnInfo],
    /// The columns from this one on hold associations.
    pub first_link: usize,
    /// The seed of the row hashes.
    pub seed: u64,
}

/// One kind of warehouse, connected.
pub trait Warehouse: Send + Sync {
    /// The model's columns and their kinds, without reading its rows.
    fn describe<'a>(&'a self, sync: &'a str, sql: &'a str) -> BoxFuture<'a, Result<Vec<ColumnInfo>, SourceError>>;

    /// Starts a snapshot both reads of a run share, where the warehouse has them.
    fn begin_snapshot<'a>(&'a self, _sync: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async { Ok(()) })
    }

    /// Ends the snapshot.
    fn end_snapshot<'a>(&'a self, _sync: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async { Ok(()) })
    }

    /// Runs the model and sends every row's key and hash to `tx` in chunks. Returns the number
    /// of rows read.
    fn stream_keys<'a>(
        &'a self,
        read: KeyRead<'a>,
        tx: mpsc::Sender<KeyChunk>,
    ) -> BoxFuture<'a, Result<u64, SourceError>>;

    /// Runs the model and sends the `columns` of every row (only those whose key's hash is in
    /// `keys`, when given), as HubSpot values, to `tx` in chunks. Returns the rows the
    /// warehouse sent (before `keys` picked some).
    fn stream_rows<'a>(
        &'a self,
        sync: &'a str,
        sql: &'a str,
        columns: &'a [ColumnInfo],
        keys: Option<Arc<KeySet>>,
        tx: mpsc::Sender<Vec<Row>>,
    ) -> BoxFuture<'a, Result<u64, SourceError>>;

    /// Loads the keys of the rows the second read wants (the key column's HubSpot values, in
    /// pages from `keys`) into the warehouse session, for [`Warehouse::stream_loaded`]. Returns
    /// false, having read no key, when the warehouse cannot hold them (a read-only replica):
    /// the second read then scans the whole model.
    fn load_keys<'a>(
        &'a self,
        _sync: &'a str,
        _key: &'a ColumnInfo,
        _keys: mpsc::Receiver<Vec<String>>,
    ) -> BoxFuture<'a, Result<bool, SourceError>> {
        Box::pin(async { Ok(false) })
    }

    /// The second read with the keys pushed into the query: runs the model joined with the keys
    /// [`Warehouse::load_keys`] loaded (`columns[0]` is the key) and sends those rows' `columns`,
    /// as HubSpot values, to `tx` in chunks. Returns the rows the warehouse sent.
    fn stream_loaded<'a>(
        &'a self,
        sync: &'a str,
        _sql: &'a str,
        _columns: &'a [ColumnInfo],
        _tx: mpsc::Sender<Vec<Row>>,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        let error = SourceError::Query {
            sync: sync.to_string(),
            warehouse: self.name().to_string(),
            message: "this warehouse cannot read rows by loaded keys".to_string(),
        };
        Box::pin(async move { Err(error) })
    }

    /// Runs `COPY (sql) TO STDOUT` and throws the rows away: the floor `hubsync bench` compares
    /// runs with. Only PostgreSQL has it.
    fn copy_to_nowhere<'a>(&'a self, sync: &'a str, _sql: &'a str) -> BoxFuture<'a, Result<u64, SourceError>> {
        let error = SourceError::Query {
            sync: sync.to_string(),
            warehouse: self.name().to_string(),
            message: "the COPY floor is measured on PostgreSQL only".to_string(),
        };
        Box::pin(async move { Err(error) })
    }

    /// Asks the warehouse to stop the statement running now (a timeout or a shutdown); returns
    /// once the request is sent, or could not be.
    fn cancel(&self) -> BoxFuture<'_, ()>;

    /// The warehouse's name in the config.
    fn name(&self) -> &str;
}
