//! Backups and restores of a node's data file.
//!
//! A backup is `VACUUM INTO`: one consistent file, taken while `serve` runs. A restore
//! puts such a file in place of the node's data file and gives it a new feed epoch, so
//! every peer knows this node's sequence numbers were reused and reconciles with it
//! instead of trusting its checkpoints; changes the node made after the backup come
//! back from the peers that hold them. The file it replaces is kept beside it, never
//! deleted.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::{
    DB_FILE, NodeSettings, StoreConfig, StoreError, now_ms, open_connection, random_bytes, schema,
};

/// Case numbers skipped on each day from the backup's newest day on: the node may
/// have issued numbers after the backup that come back only once it syncs, and a
/// number is never given to two cases. A center registers far fewer cases a day.
pub const CASE_SEQ_MARGIN: i64 = 1_000;

#[derive(Clone, Debug, Serialize)]
pub struct BackupInfo {
    pub file: PathBuf,
    pub bytes: u64,
    pub feed_head: u64,
    pub cases: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestoreInfo {
    pub node_id: String,
    pub cases: i64,
    pub feed_head: u64,
    pub feed_epoch: u64,
    /// Where the replaced data file was moved, if there was one.
    pub kept: Option<PathBuf>,
}

impl super::Store {
    /// Writes a consistent copy of the data file to `out` (a new file).
    pub fn backup_to(&self, out: &Path) -> Result<BackupInfo, StoreError> {
        if out.exists() {
            return Err(StoreError::Invalid(format!(
                "{} already exists; a backup never overwrites a file",
                out.display()
            )));
        }
        let text = out
            .to_str()
            .ok_or_else(|| StoreError::Invalid("the backup path is not UTF-8".into()))?;
        self.conn.execute("VACUUM INTO ?1", [text])?;
        Ok(BackupInfo {
            file: out.to_owned(),
            bytes: std::fs::metadata(out)?.len(),
            feed_head: self.feed_head()?,
            cases: self.case_count()?,
        })
    }
}

fn settings_of(conn: &Connection) -> Result<NodeSettings, StoreError> {
    let json: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'node'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let json = json.ok_or_else(|| StoreError::Corrupt("node settings are missing".into()))?;
    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("node settings: {e}")))
}

/// Reads a backup file without changing it: its schema version and whose it is.
fn inspect(file: &Path) -> Result<NodeSettings, StoreError> {
    let conn =
        Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
            StoreError::Invalid(format!("{} is not a Yichuang backup: {e}", file.display()))
        })?;
    let version = schema::version(&conn).map_err(|e| {
        StoreError::Invalid(format!("{} is not a Yichuang backup: {e}", file.display()))
    })?;
    if version > schema::SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: schema::SCHEMA_VERSION,
        });
    }
    settings_of(&conn).map_err(|e| {
        StoreError::Invalid(format!("{} is not a Yichuang backup: {e}", file.display()))
    })
}

/// Puts the backup `from` in place of the data file in `dir`. The node must not be
/// running. A backup of another node is refused: its identity would clash.
pub fn restore(dir: &Path, from: &Path) -> Result<RestoreInfo, StoreError> {
    let backup = inspect(from)?;
    let live = dir.join(DB_FILE);
    if live.exists() {
        let current = {
            let conn = Connection::open_with_flags(&live, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            // Folds the WAL into the file, so moving the file moves everything.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            settings_of(&conn)?
        };
        if current.node_id != backup.node_id {
            return Err(StoreError::Invalid(format!(
                "the backup belongs to node {} ({}), this folder to node {} ({}); nothing was changed",
                backup.node_id, backup.name, current.node_id, current.name
            )));
        }
    }
    std::fs::create_dir_all(dir)?;
    let staging = dir.join(format!("{DB_FILE}.restoring"));
    let _ = std::fs::remove_file(&staging);
    std::fs::copy(from, &staging)?;
    let epoch = u64::from_le_bytes(random_bytes::<8>());
    {
        let mut conn = open_connection(&staging, &StoreConfig::default())?;
        schema::upgrade(&mut conn)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'feed_epoch'",
            [epoch.to_string()],
        )?;
        // Every peer gets a reconciliation: our checkpoints of them are as old as the backup.
        tx.execute("UPDATE peers SET reconcile_due = 1", [])?;
        let newest_day: Option<String> =
            tx.query_row("SELECT MAX(day) FROM case_seq", [], |r| r.get(0))?;
        if let Some(day) = newest_day {
            tx.execute(
                "UPDATE case_seq SET next = next + ?1 WHERE day >= ?2",
                rusqlite::params![CASE_SEQ_MARGIN, day],
            )?;
        }
        let today = super::cases::china_day(now_ms());
        tx.execute(
            "INSERT INTO case_seq (day, next) VALUES (?1, ?2) ON CONFLICT (day) DO NOTHING",
            rusqlite::params![today, CASE_SEQ_MARGIN],
        )?;
        tx.commit()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    let kept = if live.exists() {
        let aside = dir.join(format!("{DB_FILE}.before-restore-{}", now_ms()));
        std::fs::rename(&live, &aside)?;
        Some(aside)
    } else {
        None
    };
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{DB_FILE}{suffix}")));
        let _ = std::fs::remove_file(dir.join(format!("{DB_FILE}.restoring{suffix}")));
    }
    std::fs::rename(&staging, &live)?;
    let store = super::Store::open(dir)?;
    Ok(RestoreInfo {
        node_id: backup.node_id.to_string(),
        cases: store.case_count()?,
        feed_head: store.feed_head()?,
        feed_epoch: store.feed_epoch()?,
        kept,
    })
}
