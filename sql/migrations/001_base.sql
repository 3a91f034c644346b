-- Schema version 1: the state schema of the first releases (frozen; later changes are new
-- files in this folder, listed in src/state/migrate.rs). It is idempotent, so it also brings
-- a file written before schema versions existed up to version 1.
--
-- hubsync state: one DuckDB file per sync. No indexes or constraints on the big tables:
-- DuckDB's ART index makes bulk replaces 100x slower; whole tables are swapped instead.

-- What HubSpot acknowledged, one row per model key: the record id learned, the hash of the
-- delivered property values and the values themselves (a JSON object). A NULL row_hash means
-- the id is known but nothing was delivered yet.
CREATE TABLE IF NOT EXISTS snapshot (
    pk VARCHAR,
    hubspot_id VARCHAR,
    row_hash UBIGINT,
    props VARCHAR,
    delivered_at TIMESTAMP
);

-- Append-only log of acknowledgements ('ack'), ids learned ('id') and rejections ('reject'),
-- one transaction per HubSpot batch. Merged into snapshot and rejections at the end of a run,
-- or at the next start after a crash.
CREATE TABLE IF NOT EXISTS journal (
    seq BIGINT,
    run_id BIGINT,
    kind VARCHAR,
    pk VARCHAR,
    hubspot_id VARCHAR,
    row_hash UBIGINT,
    props VARCHAR,
    code VARCHAR,
    message VARCHAR,
    recorded_at TIMESTAMP
);

-- Records HubSpot refused, with its reason. A refusal of the values themselves (`on_change`)
-- waits until the row's hash differs from `row_hash`; others are retried on every run.
CREATE TABLE IF NOT EXISTS rejections (
    pk VARCHAR,
    run_id BIGINT,
    code VARCHAR,
    message VARCHAR,
    attempts INTEGER,
    first_seen TIMESTAMP,
    last_seen TIMESTAMP
);

-- Rows of the last run that could not be sent at all (null or repeated primary key).
CREATE TABLE IF NOT EXISTS invalid_rows (
    run_id BIGINT,
    row_number BIGINT,
    pk VARCHAR,
    code VARCHAR,
    message VARCHAR
);

-- One row per run: what triggered it, what it did, how it ended.
CREATE TABLE IF NOT EXISTS runs (
    run_id BIGINT,
    trigger VARCHAR,
    full_resync BOOLEAN,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR,
    rows_read BIGINT,
    invalid BIGINT,
    unchanged BIGINT,
    created BIGINT,
    updated BIGINT,
    skipped BIGINT,
    rejected BIGINT,
    associated BIGINT,
    association_rejected BIGINT,
    list_added BIGINT,
    list_removed BIGINT,
    requests BIGINT,
    error VARCHAR
);

-- Associations HubSpot acknowledged: one row per (rule, record, target value, labels).
-- Syncing only creates links, so rows are only ever added.
CREATE TABLE IF NOT EXISTS associations (
    assoc VARCHAR,
    from_pk VARCHAR,
    to_value VARCHAR,
    labels VARCHAR,
    from_id VARCHAR,
    to_id VARCHAR,
    delivered_at TIMESTAMP
);

-- Associations that could not be made in the last run, with the reason; retried every run.
CREATE TABLE IF NOT EXISTS association_rejections (
    assoc VARCHAR,
    from_pk VARCHAR,
    to_value VARCHAR,
    labels VARCHAR,
    code VARCHAR,
    message VARCHAR,
    attempts INTEGER,
    first_seen TIMESTAMP,
    last_seen TIMESTAMP
);

-- HubSpot ids of associated records, found by a property value (lower-cased), so a target is
-- looked up once.
CREATE TABLE IF NOT EXISTS lookup_ids (
    object VARCHAR,
    property VARCHAR,
    value VARCHAR,
    hubspot_id VARCHAR
);

-- Members of the sync's list that HubSpot acknowledged.
CREATE TABLE IF NOT EXISTS list_members (
    list_id VARCHAR,
    pk VARCHAR,
    hubspot_id VARCHAR,
    added_at TIMESTAMP
);

-- Small facts about the sync, e.g. the id of its list.
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR,
    value VARCHAR
);

-- Creates sent on the search-and-create path (a non-unique match property) that no answer
-- settled yet: the intent is journaled before the request leaves. A pending create is looked
-- up by its match value once the search index has caught up, before it may be created again.
CREATE TABLE IF NOT EXISTS pending_creates (
    pk VARCHAR,
    match_value VARCHAR,
    batch VARCHAR,
    run_id BIGINT,
    sent_at TIMESTAMP
);

-- Columns added after the first release; a file written before gets them on its first
-- writable open (read-only commands cope without them).
ALTER TABLE journal ADD COLUMN IF NOT EXISTS match_value VARCHAR;
ALTER TABLE journal ADD COLUMN IF NOT EXISTS on_change BOOLEAN;
ALTER TABLE rejections ADD COLUMN IF NOT EXISTS row_hash UBIGINT;
ALTER TABLE rejections ADD COLUMN IF NOT EXISTS on_change BOOLEAN;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS held BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS uncertain BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS reconciled BIGINT;
