//! The registry: identities, issued certificates and affiliations of one CA, behind the
//! [`Registry`] trait, with an embedded SQLite implementation ([`SqliteRegistry`]).
//!
//! Several CAs share one database file; every row carries its CA's name. Operations that must
//! not interleave (an enrollment's counter check, increment and certificate insert; a
//! revocation of an identity and its certificates) are single transactions.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("identity {0:?} is already registered")]
    Duplicate(String),
    #[error("identity {0:?} not found")]
    NotFound(String),
    #[error(
        "the identity {id} has already enrolled {max} times, it has reached its maximum enrollment allowance"
    )]
    Exhausted { id: String, max: i64 },
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("registry lock poisoned")]
    Poisoned,
}

/// An attribute of an identity (`api.Attribute`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub ecert: bool,
}

/// An identity (`users` table of Fabric CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub id: String,
    /// `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
    pub secret_hash: String,
    pub id_type: String,
    pub affiliation: String,
    pub attrs: Vec<Attribute>,
    pub max_enrollments: i64,
    /// Successful enrollments so far; −1 once revoked (Fabric CA's `state`).
    pub state: i64,
}

impl IdentityRecord {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    pub fn is_revoked(&self) -> bool {
        self.state == -1
    }
}

/// An issued certificate (`certificates` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// Lowercase hex, leading zeros trimmed.
    pub serial: String,
    pub aki: String,
    pub id: String,
    /// `good` or `revoked`.
    pub status: String,
    pub reason: i64,
    /// Unix seconds.
    pub expiry: i64,
    pub revoked_at: i64,
    pub pem: String,
}

/// Filters of `GET certificates` (all optional).
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    pub id: Option<String>,
    pub serial: Option<String>,
    pub aki: Option<String>,
    pub not_revoked: bool,
    pub not_expired: bool,
    pub revoked_after: Option<i64>,
    pub revoked_before: Option<i64>,
    pub expired_after: Option<i64>,
    pub expired_before: Option<i64>,
    /// Only certificates of these identities (the caller's manageable set); `None` = all.
    pub ids: Option<Vec<String>>,
}

/// Storage of one CA's registry.
pub trait Registry: Send + Sync {
    fn get_identity(&self, id: &str) -> Result<Option<IdentityRecord>, RegistryError>;
    fn list_identities(&self) -> Result<Vec<IdentityRecord>, RegistryError>;
    /// Fails with [`RegistryError::Duplicate`] when the ID exists.
    fn insert_identity(&self, rec: &IdentityRecord) -> Result<(), RegistryError>;
    /// Replaces type, affiliation, attributes, max enrollments, secret and state.
    fn update_identity(&self, rec: &IdentityRecord) -> Result<(), RegistryError>;
    fn delete_identity(&self, id: &str) -> Result<(), RegistryError>;
    /// Wrong secrets given for `id` since its last successful login.
    fn failed_logins(&self, id: &str) -> Result<i64, RegistryError>;
    /// Counts one more wrong secret (`reset`: back to zero after a good one).
    fn record_login(&self, id: &str, reset: bool) -> Result<(), RegistryError>;

    /// Records an issued certificate; when `count` (a Basic-auth enrollment), atomically checks
    /// the identity's remaining enrollments against `max` (−1 = unlimited) and increments its
    /// counter, failing with [`RegistryError::Exhausted`] without writing anything.
    fn record_enrollment(
        &self,
        id: &str,
        count: Option<i64>,
        cert: &CertRecord,
    ) -> Result<(), RegistryError>;
    fn get_certificate(&self, serial: &str, aki: &str)
    -> Result<Option<CertRecord>, RegistryError>;
    fn list_certificates(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, RegistryError>;
    /// Revokes one certificate; false when it was not `good`.
    fn revoke_certificate(
        &self,
        serial: &str,
        aki: &str,
        reason: i64,
        at: i64,
    ) -> Result<bool, RegistryError>;
    /// Marks the identity revoked and revokes all its good certificates, returning them.
    fn revoke_identity(
        &self,
        id: &str,
        reason: i64,
        at: i64,
    ) -> Result<Vec<CertRecord>, RegistryError>;

    fn affiliations(&self) -> Result<Vec<String>, RegistryError>;
    fn add_affiliation(&self, name: &str) -> Result<bool, RegistryError>;
    /// Removes an affiliation and its sub-affiliations.
    fn remove_affiliation(&self, name: &str) -> Result<Vec<String>, RegistryError>;
    /// Renames an affiliation and its sub-affiliations, moving the identities under them (their
    /// affiliation and `hf.Affiliation`) in the same transaction. Returns the new names and the
    /// identities moved.
    fn rename_affiliation(
        &self,
        old: &str,
        new: &str,
    ) -> Result<(Vec<String>, Vec<IdentityRecord>), RegistryError>;
}

/// `name` with the prefix `old` (a whole affiliation path element) replaced by `new`.
fn moved(name: &str, old: &str, new: &str) -> Option<String> {
    if name == old {
        Some(new.to_string())
    } else {
        name.strip_prefix(&format!("{old}."))
            .map(|rest| format!("{new}.{rest}"))
    }
}

/// The SQLite database shared by the CAs of one server.
#[derive(Clone)]
pub struct SqliteDb {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteDb {
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        Self::init(Connection::open(path)?)
    }

    pub fn in_memory() -> Result<Self, RegistryError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, RegistryError> {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS identities (
                ca TEXT NOT NULL, id TEXT NOT NULL, secret_hash TEXT NOT NULL,
                type TEXT NOT NULL, affiliation TEXT NOT NULL, attrs TEXT NOT NULL,
                max_enrollments INTEGER NOT NULL, state INTEGER NOT NULL,
                incorrect_password_attempts INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (ca, id));
             CREATE TABLE IF NOT EXISTS certificates (
                ca TEXT NOT NULL, serial TEXT NOT NULL, aki TEXT NOT NULL, id TEXT NOT NULL,
                status TEXT NOT NULL, reason INTEGER NOT NULL, expiry INTEGER NOT NULL,
                revoked_at INTEGER NOT NULL, pem TEXT NOT NULL,
                PRIMARY KEY (ca, serial, aki));
             CREATE INDEX IF NOT EXISTS certificates_id ON certificates (ca, id);
             CREATE TABLE IF NOT EXISTS affiliations (
                ca TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (ca, name));",
        )?;
        Ok(SqliteDb {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The registry of CA `ca` in this database.
    pub fn registry(&self, ca: &str) -> SqliteRegistry {
        SqliteRegistry {
            db: self.clone(),
            ca: ca.to_string(),
        }
    }
}

pub struct SqliteRegistry {
    db: SqliteDb,
    ca: String,
}

impl SqliteRegistry {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut conn = self.db.conn.lock().map_err(|_| RegistryError::Poisoned)?;
        f(&mut conn)
    }

    /// Runs an insert or update of one identity row (parameters ?1..?8: ca, then the record's
    /// columns); `none(id)` is the error when it touched no row.
    fn write_identity(
        &self,
        sql: &str,
        rec: &IdentityRecord,
        none: fn(String) -> RegistryError,
    ) -> Result<(), RegistryError> {
        let attrs = attrs_json(rec)?;
        self.with(|c| {
            let n = c.execute(
                sql,
                params![
                    self.ca,
                    rec.id,
                    rec.secret_hash,
                    rec.id_type,
                    rec.affiliation,
                    attrs,
                    rec.max_enrollments,
                    rec.state
                ],
            )?;
            if n == 0 {
                return Err(none(rec.id.clone()));
            }
            Ok(())
        })
    }
}

const IDENTITY_COLS: &str = "id, secret_hash, type, affiliation, attrs, max_enrollments, state";
const CERT_COLS: &str = "serial, aki, id, status, reason, expiry, revoked_at, pem";

fn identity_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(IdentityRecord, String)> {
    Ok((
        IdentityRecord {
            id: row.get(0)?,
            secret_hash: row.get(1)?,
            id_type: row.get(2)?,
            affiliation: row.get(3)?,
            attrs: Vec::new(),
            max_enrollments: row.get(5)?,
            state: row.get(6)?,
        },
        row.get(4)?,
    ))
}

fn with_attrs((mut rec, attrs): (IdentityRecord, String)) -> Result<IdentityRecord, RegistryError> {
    rec.attrs = serde_json::from_str(&attrs).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
    Ok(rec)
}

fn cert_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CertRecord> {
    Ok(CertRecord {
        serial: row.get(0)?,
        aki: row.get(1)?,
        id: row.get(2)?,
        status: row.get(3)?,
        reason: row.get(4)?,
        expiry: row.get(5)?,
        revoked_at: row.get(6)?,
        pem: row.get(7)?,
    })
}

fn attrs_json(rec: &IdentityRecord) -> Result<String, RegistryError> {
    serde_json::to_string(&rec.attrs).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

impl Registry for SqliteRegistry {
    fn get_identity(&self, id: &str) -> Result<Option<IdentityRecord>, RegistryError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {IDENTITY_COLS} FROM identities WHERE ca = ?1 AND id = ?2"),
                params![self.ca, id],
                identity_row,
            )
            .optional()?
            .map(with_attrs)
            .transpose()
        })
    }

    fn list_identities(&self) -> Result<Vec<IdentityRecord>, RegistryError> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {IDENTITY_COLS} FROM identities WHERE ca = ?1 ORDER BY id"
            ))?;
            let rows = st.query_map(params![self.ca], identity_row)?;
            rows.map(|r| with_attrs(r?)).collect()
        })
    }

    fn insert_identity(&self, rec: &IdentityRecord) -> Result<(), RegistryError> {
        self.write_identity(
            "INSERT OR IGNORE INTO identities (ca, id, secret_hash, type, affiliation, attrs, max_enrollments, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rec,
            RegistryError::Duplicate,
        )
    }

    fn update_identity(&self, rec: &IdentityRecord) -> Result<(), RegistryError> {
        self.write_identity(
            "UPDATE identities SET secret_hash = ?3, type = ?4, affiliation = ?5, attrs = ?6,
             max_enrollments = ?7, state = ?8 WHERE ca = ?1 AND id = ?2",
            rec,
            RegistryError::NotFound,
        )
    }

    fn delete_identity(&self, id: &str) -> Result<(), RegistryError> {
        self.with(|c| {
            let n = c.execute(
                "DELETE FROM identities WHERE ca = ?1 AND id = ?2",
                params![self.ca, id],
            )?;
            if n == 0 {
                return Err(RegistryError::NotFound(id.to_string()));
            }
            Ok(())
        })
    }

    fn failed_logins(&self, id: &str) -> Result<i64, RegistryError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT incorrect_password_attempts FROM identities WHERE ca = ?1 AND id = ?2",
                params![self.ca, id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
        })
    }

    fn record_login(&self, id: &str, reset: bool) -> Result<(), RegistryError> {
        let sql = if reset {
            "UPDATE identities SET incorrect_password_attempts = 0
             WHERE ca = ?1 AND id = ?2 AND incorrect_password_attempts != 0"
        } else {
            "UPDATE identities SET incorrect_password_attempts = incorrect_password_attempts + 1
             WHERE ca = ?1 AND id = ?2"
        };
        self.with(|c| {
            c.execute(sql, params![self.ca, id])?;
            Ok(())
        })
    }

    fn record_enrollment(
        &self,
        id: &str,
        count: Option<i64>,
        cert: &CertRecord,
    ) -> Result<(), RegistryError> {
        self.with(|c| {
            let tx = c.transaction()?;
            if let Some(max) = count {
                let state: Option<i64> = tx
                    .query_row(
                        "SELECT state FROM identities WHERE ca = ?1 AND id = ?2",
                        params![self.ca, id],
                        |r| r.get(0),
                    )
                    .optional()?;
                let state = state.ok_or_else(|| RegistryError::NotFound(id.to_string()))?;
                // A concurrent enrollment may have used the last one since the secret was
                // checked: the decision is taken again here, inside the transaction.
                if max != -1 && state >= max {
                    return Err(RegistryError::Exhausted {
                        id: id.to_string(),
                        max,
                    });
                }
                tx.execute(
                    "UPDATE identities SET state = state + 1 WHERE ca = ?1 AND id = ?2 AND state >= 0",
                    params![self.ca, id],
                )?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO certificates (ca, {CERT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    self.ca,
                    cert.serial,
                    cert.aki,
                    cert.id,
                    cert.status,
                    cert.reason,
                    cert.expiry,
                    cert.revoked_at,
                    cert.pem
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn get_certificate(
        &self,
        serial: &str,
        aki: &str,
    ) -> Result<Option<CertRecord>, RegistryError> {
        self.with(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {CERT_COLS} FROM certificates WHERE ca = ?1 AND serial = ?2 AND aki = ?3"
                ),
                params![self.ca, serial, aki],
                cert_row,
            )
            .optional()?)
        })
    }

    fn list_certificates(&self, f: &CertFilter) -> Result<Vec<CertRecord>, RegistryError> {
        let all: Vec<CertRecord> = self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {CERT_COLS} FROM certificates WHERE ca = ?1 ORDER BY rowid"
            ))?;
            let rows = st.query_map(params![self.ca], cert_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })?;
        let now = crate::x509::now_secs() as i64;
        Ok(all
            .into_iter()
            .filter(|r| f.id.as_ref().is_none_or(|v| &r.id == v))
            .filter(|r| f.serial.as_ref().is_none_or(|v| &r.serial == v))
            .filter(|r| f.aki.as_ref().is_none_or(|v| &r.aki == v))
            .filter(|r| !f.not_revoked || r.status != "revoked")
            .filter(|r| !f.not_expired || r.expiry > now)
            .filter(|r| {
                f.revoked_after
                    .is_none_or(|t| r.status == "revoked" && r.revoked_at >= t)
            })
            .filter(|r| {
                f.revoked_before
                    .is_none_or(|t| r.status == "revoked" && r.revoked_at <= t)
            })
            .filter(|r| f.expired_after.is_none_or(|t| r.expiry >= t))
            .filter(|r| f.expired_before.is_none_or(|t| r.expiry <= t))
            .filter(|r| f.ids.as_ref().is_none_or(|ids| ids.contains(&r.id)))
            .collect())
    }

    fn revoke_certificate(
        &self,
        serial: &str,
        aki: &str,
        reason: i64,
        at: i64,
    ) -> Result<bool, RegistryError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE certificates SET status = 'revoked', reason = ?4, revoked_at = ?5
                 WHERE ca = ?1 AND serial = ?2 AND aki = ?3 AND status != 'revoked'",
                params![self.ca, serial, aki, reason, at],
            )?;
            Ok(n > 0)
        })
    }

    fn revoke_identity(
        &self,
        id: &str,
        reason: i64,
        at: i64,
    ) -> Result<Vec<CertRecord>, RegistryError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE identities SET state = -1 WHERE ca = ?1 AND id = ?2",
                params![self.ca, id],
            )?;
            if n == 0 {
                return Err(RegistryError::NotFound(id.to_string()));
            }
            let revoked = {
                let mut st = tx.prepare(&format!(
                    "SELECT {CERT_COLS} FROM certificates WHERE ca = ?1 AND id = ?2 AND status != 'revoked'"
                ))?;
                st.query_map(params![self.ca, id], cert_row)?
                    .collect::<Result<Vec<_>, _>>()?
            };
            tx.execute(
                "UPDATE certificates SET status = 'revoked', reason = ?3, revoked_at = ?4
                 WHERE ca = ?1 AND id = ?2 AND status != 'revoked'",
                params![self.ca, id, reason, at],
            )?;
            tx.commit()?;
            Ok(revoked
                .into_iter()
                .map(|mut r| {
                    r.status = "revoked".into();
                    r.reason = reason;
                    r.revoked_at = at;
                    r
                })
                .collect())
        })
    }

    fn affiliations(&self) -> Result<Vec<String>, RegistryError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT name FROM affiliations WHERE ca = ?1 ORDER BY name")?;
            let rows = st.query_map(params![self.ca], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn add_affiliation(&self, name: &str) -> Result<bool, RegistryError> {
        self.with(|c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO affiliations (ca, name) VALUES (?1, ?2)",
                params![self.ca, name],
            )?;
            Ok(n > 0)
        })
    }

    fn remove_affiliation(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let like = format!("{}.%", name.replace('%', "\\%").replace('_', "\\_"));
            let removed = {
                let mut st = tx.prepare(
                    "SELECT name FROM affiliations WHERE ca = ?1 AND (name = ?2 OR name LIKE ?3 ESCAPE '\\')",
                )?;
                st.query_map(params![self.ca, name, like], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
            };
            tx.execute(
                "DELETE FROM affiliations WHERE ca = ?1 AND (name = ?2 OR name LIKE ?3 ESCAPE '\\')",
                params![self.ca, name, like],
            )?;
            tx.commit()?;
            Ok(removed)
        })
    }

    fn rename_affiliation(
        &self,
        old: &str,
        new: &str,
    ) -> Result<(Vec<String>, Vec<IdentityRecord>), RegistryError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let affs = {
                let mut st = tx.prepare("SELECT name FROM affiliations WHERE ca = ?1")?;
                st.query_map(params![self.ca], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
            };
            let mut renamed = Vec::new();
            for a in &affs {
                if let Some(n) = moved(a, old, new) {
                    tx.execute(
                        "UPDATE affiliations SET name = ?3 WHERE ca = ?1 AND name = ?2",
                        params![self.ca, a, n],
                    )?;
                    renamed.push(n);
                }
            }
            let ids = {
                let mut st = tx.prepare(&format!(
                    "SELECT {IDENTITY_COLS} FROM identities WHERE ca = ?1"
                ))?;
                st.query_map(params![self.ca], identity_row)?
                    .collect::<Result<Vec<_>, _>>()?
            };
            let mut moved_ids = Vec::new();
            for row in ids {
                let mut rec = with_attrs(row)?;
                let Some(aff) = moved(&rec.affiliation, old, new) else {
                    continue;
                };
                rec.affiliation = aff.clone();
                for a in rec.attrs.iter_mut().filter(|a| a.name == "hf.Affiliation") {
                    a.value = aff.clone();
                }
                tx.execute(
                    "UPDATE identities SET affiliation = ?3, attrs = ?4 WHERE ca = ?1 AND id = ?2",
                    params![self.ca, rec.id, rec.affiliation, attrs_json(&rec)?],
                )?;
                moved_ids.push(rec);
            }
            tx.commit()?;
            renamed.sort();
            Ok((renamed, moved_ids))
        })
    }
}
