//! Write transactions that nest: a top-level `BEGIN IMMEDIATE`, or a savepoint when
//! the store is inside a group commit, so one failing operation in a group rolls
//! back alone while the others commit together with one fsync.

use std::ops::Deref;

use rusqlite::Connection;

use super::StoreError;

pub(crate) struct Tx<'c> {
    conn: &'c Connection,
    nested: bool,
    done: bool,
}

impl<'c> Tx<'c> {
    pub(crate) fn begin(conn: &'c Connection, nested: bool) -> Result<Tx<'c>, StoreError> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that later
        // upgrades can fail with BUSY without waiting, which would lose the clerk's work.
        conn.execute_batch(if nested {
            "SAVEPOINT op"
        } else {
            "BEGIN IMMEDIATE"
        })?;
        Ok(Tx {
            conn,
            nested,
            done: false,
        })
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        self.done = true;
        let sql = if self.nested { "RELEASE op" } else { "COMMIT" };
        if let Err(e) = self.conn.execute_batch(sql) {
            // A failed COMMIT (full disk) leaves the transaction open: end it so the
            // connection stays usable, and report the original error.
            let _ = self.conn.execute_batch(if self.nested {
                "ROLLBACK TO op; RELEASE op"
            } else {
                "ROLLBACK"
            });
            return Err(e.into());
        }
        Ok(())
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let sql = if self.nested {
                "ROLLBACK TO op; RELEASE op"
            } else {
                "ROLLBACK"
            };
            if let Err(e) = self.conn.execute_batch(sql) {
                tracing::warn!(error = %e, "rollback failed");
            }
        }
    }
}
