//! The staging file: the first read's rows (key, key hash, row hash, whether the source
//! rejected it) in an unnamed file of the store's spill folder, and what their hashes add up to.
//! `staging.rs` says how the diff uses it.

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
/// The flag of a row the source rejected (its reason is in `staging_rejects`).
const REJECTED: u8 = 1;
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
    /// The fingerprint of every row's key hash (that of the valid keys, when `clean`).
    keys: KeyFingerprint,
    /// Whether the rows are in the `staging` table already.
    pub(super) loaded: bool,
    /// Whether the diff found the model equal to the snapshot (only ever for `clean` rows).
    pub(super) equals_snapshot: bool,
    /// The fingerprint of the valid keys (`StateStore::model_fingerprint`), set by a diff that
    /// did without the `staging` table: that diff also wrote `left_keys`, the snapshot's keys no
    /// staged row names, so a step that needs every model key can do without them.
    pub(super) fingerprint: Option<(String, u64)>,
}

/// One staged row, as [`StagingFile::for_each_row`] reads it back.
pub(super) struct StagedRow<'a> {
    /// Its number in the model, from 1.
    pub(super) rownum: i64,
    pub(super) key: Option<&'a str>,
    pub(super) key_hash: u64,
    pub(super) hash: u64,
    /// The source rejected it.
    pub(super) rejected: bool,
}

/// The count, xor and sum of a set of key hashes: equal fingerprints mean, but for a 2^-64
/// chance, the same keys.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyFingerprint {
    pub(super) count: u64,
    pub(super) xor: u64,
    pub(super) sum: u128,
}

impl KeyFingerprint {
    pub(super) fn add(&mut self, key_hash: u64) {
        self.count += 1;
        self.xor ^= key_hash;
        self.sum += u128::from(key_hash);
    }

    pub(super) fn remove(&mut self, key_hash: u64) {
        self.count -= 1;
        self.xor ^= key_hash;
        self.sum -= u128::from(key_hash);
    }

    /// The form [`StateStore::model_fingerprint`] gives, and the count.
    pub(super) fn text(&self) -> (String, u64) {
        (format!("{}:{}:{}", self.count, self.xor, self.sum), self.count)
    }
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
            keys: KeyFingerprint::default(),
            loaded: false,
            equals_snapshot: false,
            fingerprint: None,
        })
    }

    pub(super) fn write(&mut self, keys: &[RowKey]) -> std::io::Result<()> {
        for row in keys {
            self.rows += 1;
            self.hash_sum += u128::from(row.hash);
            self.keys.add(row.key_hash);
            self.clean &= row.key.is_some() && row.rejected.is_none();
            self.writer.write_all(&row.key_hash.to_le_bytes())?;
            self.writer.write_all(&row.hash.to_le_bytes())?;
            self.writer.write_all(&[if row.rejected.is_some() { REJECTED } else { 0 }])?;
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

    /// The fingerprint of every row's key, once the diff found the rows equal to the
    /// snapshot's (so every row is valid).
    pub(super) fn clean_fingerprint(&self) -> (String, u64) {
        self.keys.text()
    }

    /// Reads the rows back, in order, one at a time. `state` names the state file in errors.
    pub(super) fn for_each_row(
        &mut self,
        state: &Path,
        mut each: impl FnMut(StagedRow<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let error = |message: String| query_error(state, message);
        let io = |e: std::io::Error| error(format!("cannot read the staging file back: {e}"));
        self.writer.flush().map_err(io)?;
        let mut file = self.writer.get_ref().try_clone().map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut head = [0u8; 21];
        let mut bytes = Vec::new();
        for rownum in 1..=self.rows as i64 {
            reader.read_exact(&mut head).map_err(io)?;
            let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
            let (key_hash, hash, rejected) = (word(0), word(8), head[16] & REJECTED != 0);
            let len = u32::from_le_bytes(head[17..21].try_into().expect("4 bytes"));
            let key = if len == NULL_KEY {
                None
            } else {
                bytes.resize(len as usize, 0);
                reader.read_exact(&mut bytes).map_err(io)?;
                // Written from a `String`.
                Some(std::str::from_utf8(&bytes).map_err(|e| error(format!("the staging file is damaged: {e}")))?)
            };
            each(StagedRow { rownum, key, key_hash, hash, rejected })?;
        }
        // Back to the end, should more rows come.
        self.writer.get_mut().seek(SeekFrom::End(0)).map_err(io)?;
        Ok(())
    }

    /// Reads the rows back, in order, `each` getting them as Arrow batches of [`LOAD_ROWS`]
    /// rows (key `c0`, key hash `k`, row hash `h`), which DuckDB appends a vector at a time.
    /// `state` names the state file in errors.
    pub(super) fn read_back(
        &mut self,
        state: &Path,
        mut each: impl FnMut(RecordBatch) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("c0", DataType::Utf8, true),
            Field::new("k", DataType::UInt64, false),
            Field::new("h", DataType::UInt64, false),
        ]));
        let (mut keys, mut ks, mut hs) = (StringBuilder::new(), UInt64Builder::new(), UInt64Builder::new());
        let rows = self.rows as i64;
        self.for_each_row(state, |row| {
            keys.append_option(row.key);
            ks.append_value(row.key_hash);
            hs.append_value(row.hash);
            if row.rownum % LOAD_ROWS as i64 == 0 || row.rownum == rows {
                let columns: Vec<ArrayRef> =
                    vec![Arc::new(keys.finish()), Arc::new(ks.finish()), Arc::new(hs.finish())];
                let batch = RecordBatch::try_new(schema.clone(), columns)
                    .map_err(|e| query_error(state, format!("cannot load the staged rows: {e}")))?;
                each(batch)?;
            }
            Ok(())
        })
    }
}
