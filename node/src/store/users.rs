//! Clerks' accounts and their web sessions. Passwords are kept only as argon2 PHC
//! strings; sessions only as the SHA-256 of their token.

use std::fmt;
use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Store, StoreError, now_ms, random_bytes};

/// Shortest password accepted: a counter PC is shared, so a guessable one is a leak.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest password accepted; argon2 takes any length, this only bounds the work.
pub const PASSWORD_MAX_BYTES: usize = 1_024;
/// Longest user name; names go into every event a clerk records.
pub const USER_NAME_MAX_CHARS: usize = 64;
/// A session lasts one long working day, so a clerk logs in once per shift and a
/// forgotten browser does not stay signed in overnight.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;
/// Bytes of randomness in a session token: 256 bits cannot be guessed.
const TOKEN_BYTES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Clerk,
    Supervisor,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Clerk => "clerk",
            UserRole::Supervisor => "supervisor",
            UserRole::Admin => "admin",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            UserRole::Clerk => "窗口人员",
            UserRole::Supervisor => "主管",
            UserRole::Admin => "管理员",
        }
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserRole {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "clerk" => Ok(UserRole::Clerk),
            "supervisor" => Ok(UserRole::Supervisor),
            "admin" => Ok(UserRole::Admin),
            other => Err(StoreError::Invalid(format!(
                "unknown role {other:?}; expected clerk, supervisor or admin"
            ))),
        }
    }
}

/// A signed-in clerk, as a session resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: UserRole,
}

/// Checks a user name: printable, no spaces, short; it is recorded in every event.
pub fn check_user_name(name: &str) -> Result<(), StoreError> {
    let count = name.chars().count();
    if count == 0 || count > USER_NAME_MAX_CHARS {
        return Err(StoreError::Invalid(format!(
            "a user name has 1 to {USER_NAME_MAX_CHARS} characters"
        )));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(StoreError::Invalid(
            "a user name has no spaces or control characters".into(),
        ));
    }
    Ok(())
}

/// Hashes a password into a PHC string with argon2id and a fresh salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(StoreError::Invalid(format!(
            "a password has at least {PASSWORD_MIN_CHARS} characters"
        )));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(StoreError::Invalid(format!(
            "a password has at most {PASSWORD_MAX_BYTES} bytes"
        )));
    }
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|e| StoreError::Invalid(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("hashing the password: {e}")))
}

/// Checks a password against a stored PHC string. Slow by design (argon2): call it
/// off the async workers.
pub fn verify_password(phc: &str, password: &str) -> bool {
    if password.len() > PASSWORD_MAX_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Store {
    /// Adds a clerk account, or replaces the password and role of an existing one.
    pub fn user_add(&self, name: &str, role: UserRole, password: &str) -> Result<(), StoreError> {
        check_user_name(name)?;
        let phc = hash_password(password)?;
        let tx = super::Tx::begin(&self.conn, self.in_group)?;
        tx.execute(
            "INSERT INTO users (name, role, password_phc, created_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET role = ?2, password_phc = ?3, disabled = 0",
            params![name, role.as_str(), phc, now_ms()],
        )?;
        // A new password ends the old sessions.
        tx.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
        tx.commit()
    }

    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, role FROM users WHERE disabled = 0 ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, role) = row?;
            out.push(User {
                name,
                role: role.parse()?,
            });
        }
        Ok(out)
    }

    /// A user's role and stored password hash, for a login to verify.
    pub fn user_credentials(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT role, password_phc FROM users WHERE name = ?1 AND disabled = 0",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((role, phc)) => Ok(Some((
                User {
                    name: name.to_owned(),
                    role: role.parse()?,
                },
                phc,
            ))),
        }
    }

    /// Opens a session for a verified user; returns the bearer token and its expiry.
    pub fn session_create(&self, user: &str) -> Result<(String, i64), StoreError> {
        let token = yichuang_shared::ids::encode_hex(&random_bytes::<TOKEN_BYTES>());
        let now = now_ms();
        let expires = now + SESSION_TTL_MS;
        self.conn
            .execute("DELETE FROM sessions WHERE expires_ms < ?1", [now])?;
        self.conn.execute(
            "INSERT INTO sessions (token_sha256, user_name, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
            params![token_digest(&token), user, now, expires],
        )?;
        Ok((token, expires))
    }

    /// The user a live session token belongs to.
    pub fn session_user(&self, token: &str) -> Result<Option<User>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT u.name, u.role FROM sessions s JOIN users u ON u.name = s.user_name
                 WHERE s.token_sha256 = ?1 AND s.expires_ms > ?2 AND u.disabled = 0",
                params![token_digest(token), now_ms()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((name, role)) => Ok(Some(User {
                name,
                role: role.parse()?,
            })),
        }
    }

    pub fn session_delete(&self, token: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM sessions WHERE token_sha256 = ?1",
            [token_digest(token)],
        )?;
        Ok(())
    }
}
