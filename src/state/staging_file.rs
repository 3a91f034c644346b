//! The staging file: the first read's rows (key, key hash, row hash) in an unnamed file of the
//! store's spill folder, and what their hashes add up to. `staging.rs` says how the diff uses
//! it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use duckdb::arrow::array::{ArrayRef, StringBuilder, UInt64Builder};
use duckdb::arrow::datatypes::{DataType, Field, Schema};
use duckdb::arrow::record_batch::RecordBatch;

use super::types::{query_error, StateError};
use crate::source::RowKey;

/// The length written for a NULL key.
const NULL_KEY: u32 = u32::MAX;
/// The staged rows loaded into DuckDB per appender flush.
const LOAD_ROWS: usize = 16_384;

/// The first read's rows, in an unnamed file (gone with the process, even after a crash), and
/// what their hashes add up to.
pub(super) struct StagingFile {
    writer: BufWriter<File>,
    /// Rows written.
    pub(super) rows: u64,
    /// The sum of the rows' hashes.
    pub(super) hash_sum: u128,
    /// No row has a NULL key or was rejected by the source.
    pub(super) clean: bool,
    /// The count, xor and sum of the key hashes (of every row, when `clean`).
    key_xor: u64,
    key_sum: u128,
    /// Whether the rows are in the `staging` table already.
    pub(super) loaded: bool,
    /// Whether the diff found the model equal to the snapshot (only ever for `clean` rows).
    pub(super) equals_snapshot: bool,
}

impl StagingFile {
    /// An empty staging file in `dir` (created, owner only, when missing); `state` names the
    /// state file in errors.
    pub(super) fn create(dir: &Path, state: &Path) -> Result<StagingFile, StateError> {
        let file = crate::private_files::create_private_dir(dir)
            .and_then(|_| tempfile::tempfile_in(dir))
            .map_err(|e| query_error(state, format!("cannot create a staging file in {}: {e}", dir.display())))?;
        Ok(StagingFile {
            writer: BufWriter::with_capacity(1 << 16, file),
            rows: 0,
            hash_sum: 0,
            clean: true,
            key_xor: 0,
            key_sum: 0,
            loaded: false,
            equals_snapshot: false,
        })
    }

    pub(super) fn write(&mut self, keys: &[RowKey]) -> std::io::Result<()> {
        for row in keys {
            self.rows += 1;
            self.hash_sum += u128::from(row.hash);
            self.key_xor ^= row.key_hash;
            self.key_sum += u128::from(row.key_hash);
            self.clean &= row.key.is_some() && row.rejected.is_none();
            self.writer.write_all(&row.key_hash.to_le_bytes())?;
            self.writer.write_all(&row.hash.to_le_bytes())?;
            match &row.key {
                None => self.writer.write_all(&NULL_KEY.to_le_bytes())?,
                Some(key) => {
                    let len = u32::try_from(key.len()).ok().filter(|n| *n != NULL_KEY).ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "a key is 4 GiB long or longer")
                    })?;
                    self.writer.write_all(&len.to_le_bytes())?;
                    self.writer.write_all(key.as_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// The model's keys' fingerprint as [`StateStore::model_fingerprint`] gives it, once the
    /// diff found the rows equal to the snapshot's (so every row is valid, and the fingerprint
    /// is that of every row's key).
    pub(super) fn key_fingerprint(&self) -> Option<(String, u64)> {
        self.equals_snapshot.then(|| (format!("{}:{}:{}", self.rows, self.key_xor, self.key_sum), self.rows))
    }

    /// Reads the rows back, in order, `each` getting them as Arrow batches of [`LOAD_ROWS`]
    /// rows (key `c0`, key hash `k`, row hash `h`), which DuckDB appends a vector at a time.
    /// `state` names the state file in errors.
    pub(super) fn read_back(
        &mut self,
        state: &Path,
        mut each: impl FnMut(RecordBatch) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let error = |message: String| query_error(state, message);
        let io = |e: std::io::Error| error(format!("cannot read the staging file back: {e}"));
        self.writer.flush().map_err(io)?;
        let mut file = self.writer.get_ref().try_clone().map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let schema = Arc::new(Schema::new(vec![
            Field::new("c0", DataType::Utf8, true),
            Field::new("k", DataType::UInt64, false),
            Field::new("h", DataType::UInt64, false),
        ]));
        let (mut keys, mut ks, mut hs) = (StringBuilder::new(), UInt64Builder::new(), UInt64Builder::new());
        let mut word = [0u8; 8];
        let mut len_bytes = [0u8; 4];
        let mut bytes = Vec::new();
        for n in 1..=self.rows {
            reader.read_exact(&mut word).map_err(io)?;
            ks.append_value(u64::from_le_bytes(word));
            reader.read_exact(&mut word).map_err(io)?;
            hs.append_value(u64::from_le_bytes(word));
            reader.read_exact(&mut len_bytes).map_err(io)?;
            match u32::from_le_bytes(len_bytes) {
                NULL_KEY => keys.append_null(),
                len => {
                    bytes.resize(len as usize, 0);
                    reader.read_exact(&mut bytes).map_err(io)?;
                    // Written from a `String`.
                    let key =
                        std::str::from_utf8(&bytes).map_err(|e| error(format!("the staging file is damaged: {e}")))?;
                    keys.append_value(key);
                }
            }
            if n % LOAD_ROWS as u64 == 0 || n == self.rows {
                let columns: Vec<ArrayRef> =
                    vec![Arc::new(keys.finish()), Arc::new(ks.finish()), Arc::new(hs.finish())];
                let batch = RecordBatch::try_new(schema.clone(), columns)
                    .map_err(|e| error(format!("cannot load the staged rows: {e}")))?;
                each(batch)?;
            }
        }
        // Back to the end, should more rows come.
        self.writer.get_mut().seek(SeekFrom::End(0)).map_err(io)?;
        Ok(())
    }
}
