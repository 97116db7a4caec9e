//! The store's SQLite schema and its migrations, numbered by `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreError;

/// Migrations in order; entry `i` brings a file from version `i` to `i + 1`.
/// Append only: a released migration is never edited, because files in the field
/// were made by it.
pub const MIGRATIONS: &[&str] = &[
    // 1: changes, documents, the case index, node settings and the case-number sequence.
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        actor BLOB NOT NULL,
        bytes BLOB NOT NULL,
        from_peer TEXT,
        at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX changes_by_doc ON changes (doc_id, seq);
    CREATE TABLE docs (
        doc_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        snapshot BLOB,
        snapshot_seq INTEGER NOT NULL DEFAULT 0,
        heads BLOB NOT NULL,
        last_seq INTEGER NOT NULL,
        tail INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE case_index (
        doc_id TEXT PRIMARY KEY,
        case_no TEXT NOT NULL,
        item_code TEXT NOT NULL,
        item_name TEXT NOT NULL,
        department TEXT NOT NULL,
        home_center TEXT NOT NULL,
        current_center TEXT NOT NULL,
        assigned_staff TEXT NOT NULL,
        status TEXT NOT NULL,
        applicant_name TEXT NOT NULL,
        applicant_id_masked TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        conflicts INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX case_by_no ON case_index (case_no);
    CREATE INDEX case_by_created ON case_index (created_ms);
    CREATE INDEX case_by_status ON case_index (status, created_ms);
    CREATE INDEX case_by_applicant ON case_index (applicant_name);
    CREATE INDEX case_by_item ON case_index (item_code, created_ms);
    CREATE TABLE case_seq (day TEXT PRIMARY KEY, next INTEGER NOT NULL) STRICT;
    ",
    // 2: what sync needs: per-peer checkpoints, changes waiting for their
    // dependencies, and the changes this node refused.
    "
    CREATE TABLE peers (
        peer TEXT PRIMARY KEY,
        their_epoch INTEGER NOT NULL DEFAULT 0,
        sent_seq INTEGER NOT NULL DEFAULT 0,
        received_seq INTEGER NOT NULL DEFAULT 0,
        last_contact_ms INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE pending (
        hash BLOB PRIMARY KEY,
        doc_id TEXT NOT NULL,
        bytes BLOB NOT NULL,
        from_peer TEXT,
        at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE rejections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hash BLOB NOT NULL,
        doc_id TEXT NOT NULL,
        author TEXT NOT NULL,
        from_peer TEXT,
        reason TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    ) STRICT;
    ",
    // 3: the rules of case work: deadline dates and the facts metrics read, per case.
    // Which cases are overdue is decided against the clock at query time.
    "
    ALTER TABLE case_index ADD COLUMN deadline_state TEXT NOT NULL DEFAULT '';
    ALTER TABLE case_index ADD COLUMN promised_ms INTEGER;
    ALTER TABLE case_index ADD COLUMN statutory_ms INTEGER;
    ALTER TABLE case_index ADD COLUMN calendar_version TEXT NOT NULL DEFAULT '';
    ALTER TABLE case_index ADD COLUMN rules_first_ms INTEGER;
    ALTER TABLE case_index ADD COLUMN rules_last_ms INTEGER;
    ALTER TABLE case_index ADD COLUMN rules TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX case_by_promised ON case_index (promised_ms) WHERE promised_ms IS NOT NULL;
    CREATE INDEX case_by_rules_time ON case_index (rules_last_ms);
    ",
    // 4: clerks' accounts (argon2 PHC strings, never the password) and their web
    // sessions (only a SHA-256 of each token, so a copied database opens no session).
    "
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_phc TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE sessions (
        token_sha256 BLOB PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX sessions_by_expiry ON sessions (expires_ms);
    CREATE INDEX changes_by_origin ON changes (from_peer, seq);
    ",
    // 5: what the sync engine keeps beyond the change log: which stored changes moved a
    // case (so a peer it moved to gets its whole history), both feed positions with
    // their epochs, whether a reconciliation is owed, and per peer and document the
    // syncs still owed and the documents the peer said left its scope. A trigger flags
    // the change that moved a case, whoever wrote it: every write re-indexes the case
    // right after storing its changes, in the same transaction.
    "
    ALTER TABLE changes ADD COLUMN routing_changed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE peers ADD COLUMN recv_epoch INTEGER;
    ALTER TABLE peers ADD COLUMN sent_epoch INTEGER;
    ALTER TABLE peers ADD COLUMN reconcile_due INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE peers ADD COLUMN reconciled_at_ms INTEGER;
    ALTER TABLE rejections ADD COLUMN detail TEXT NOT NULL DEFAULT '';
    CREATE INDEX rejections_by_change ON rejections (doc_id, hash);
    CREATE INDEX pending_by_doc ON pending (doc_id);
    CREATE INDEX case_by_home ON case_index (home_center);
    CREATE INDEX case_by_current ON case_index (current_center);
    CREATE INDEX case_by_staff ON case_index (assigned_staff) WHERE assigned_staff != '';
    CREATE TABLE peer_docs (
        peer TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        departed INTEGER NOT NULL DEFAULT 0,
        owed_sync INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (peer, doc_id)
    ) STRICT, WITHOUT ROWID;
    CREATE TRIGGER case_moved AFTER UPDATE OF current_center, assigned_staff ON case_index
    WHEN OLD.current_center IS NOT NEW.current_center OR OLD.assigned_staff IS NOT NEW.assigned_staff
    BEGIN
        UPDATE changes SET routing_changed = 1
        WHERE seq = (SELECT MAX(seq) FROM changes WHERE doc_id = NEW.doc_id);
    END;
    ",
];

pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub fn version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings a file up to [`SCHEMA_VERSION`], one migration per transaction, and refuses
/// a file written by a newer program rather than guess at its meaning.
pub fn upgrade(conn: &mut Connection) -> Result<(), StoreError> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        if version(&tx)? > i as u32 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
        tracing::info!(to = i + 1, "store schema upgraded");
    }
    Ok(())
}
