//! SQLite key, user-info and ephemeral stores: the embedded default, one file and no server.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row as _};
use stagepass_core::{EphemeralStore, Error, KeyStore, PublicJwk, Result, StoredKey};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::UserInfoStore;
use crate::batch::{Row, UpsertQueue, WriteBatch};
use crate::ephemeral::Sweeper;

/// The schema, created when missing. Timestamps are RFC 3339 text in UTC with full precision.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS signing_keys (
        kid TEXT PRIMARY KEY NOT NULL,
        created_at TEXT NOT NULL,
        key TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS user_info (
        user_entity_ref TEXT PRIMARY KEY NOT NULL,
        user_info TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        created_at TEXT NOT NULL
    )",
    // Expiry in Unix microseconds, so that comparisons are numeric.
    "CREATE TABLE IF NOT EXISTS ephemeral_records (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, key)
    )",
];

/// How many connections a file database pool opens. SQLite writes one at a time; the others
/// serve reads in parallel (WAL mode).
const FILE_POOL_SIZE: u32 = 4;

/// Maps a database error onto a stagepass error: an unreachable database is a
/// `ServiceUnavailableError`, anything else an internal error. The detail goes to the logs.
fn db_error(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        tracing::error!(error = %e, "sqlite: failed to {action}");
        store_error(&e, format!("sqlite store failed to {action}")).with_source(e)
    }
}

/// The error for a failed database operation, without its source.
fn store_error(e: &sqlx::Error, message: String) -> Error {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::service_unavailable(message)
        }
        _ => Error::internal(message),
    }
}

fn format_time(at: OffsetDateTime) -> Result<String> {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|e| Error::internal(format!("failed to format a timestamp: {e}")))
}

/// A SQLite database holding the `signing_keys` and `user_info` tables.
///
/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    pool: SqlitePool,
    user_info: UpsertQueue,
}

impl SqliteDatabase {
    /// Opens the database at `path`, creating the file and the tables when missing, in WAL
    /// mode. `:memory:` opens a private in-memory database that lives as long as this value
    /// and its clones.
    ///
    /// Must be called within a Tokio runtime: it starts the task that writes user info.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pool = if path == Path::new(":memory:") {
            // An in-memory database lives in its connection: keep exactly one, forever.
            let options = SqliteConnectOptions::from_str(":memory:")
                .map_err(db_error("open an in-memory database"))?;
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(db_error("open an in-memory database"))?
        } else {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(StdDuration::from_secs(5));
            SqlitePoolOptions::new()
                .max_connections(FILE_POOL_SIZE)
                .connect_with(options)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, path = %path.display(), "sqlite: failed to open");
                    Error::service_unavailable(format!(
                        "failed to open the sqlite database {}",
                        path.display()
                    ))
                    .with_source(e)
                })?
        };
        for statement in MIGRATIONS {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .map_err(db_error("create its tables"))?;
        }
        let user_info = UpsertQueue::start(SqliteBatch { pool: pool.clone() });
        Ok(Self { pool, user_info })
    }

    /// The key store on this database.
    pub fn key_store(&self) -> SqliteKeyStore {
        SqliteKeyStore {
            pool: self.pool.clone(),
        }
    }

    /// The user-info store on this database.
    pub fn user_info_store(&self) -> SqliteUserInfoStore {
        SqliteUserInfoStore {
            pool: self.pool.clone(),
            writer: self.user_info.clone(),
        }
    }

    /// The ephemeral store on this database: one-time ids and refresh hand-offs, shared by
    /// every process that opens the same file.
    pub fn ephemeral_store(&self) -> SqliteEphemeralStore {
        SqliteEphemeralStore {
            pool: self.pool.clone(),
            sweeper: Sweeper::default(),
        }
    }

    /// Closes the connections, waiting for queries in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A [`KeyStore`] in the `signing_keys` table of a [`SqliteDatabase`] (Backstage's `database`
/// key store). Every replica that opens the same file publishes every replica's keys.
#[derive(Debug, Clone)]
pub struct SqliteKeyStore {
    pool: SqlitePool,
}

#[async_trait]
impl KeyStore for SqliteKeyStore {
    async fn add_key(&self, key: &StoredKey) -> Result<()> {
        let jwk = serde_json::to_string(&key.key)
            .map_err(|e| Error::internal(format!("failed to serialize a public key: {e}")))?;
        sqlx::query("INSERT INTO signing_keys (kid, created_at, key) VALUES (?1, ?2, ?3)")
            .bind(&key.kid)
            .bind(format_time(key.created_at)?)
            .bind(jwk)
            .execute(&self.pool)
            .await
            .map_err(db_error("add a signing key"))?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query("SELECT kid, created_at, key FROM signing_keys")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("list signing keys"))?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let kid: String = row.try_get("kid").map_err(db_error("read a signing key"))?;
            let created_at: String = row
                .try_get("created_at")
                .map_err(db_error("read a signing key"))?;
            let jwk: String = row.try_get("key").map_err(db_error("read a signing key"))?;
            let parsed = OffsetDateTime::parse(&created_at, &Rfc3339)
                .ok()
                .zip(serde_json::from_str::<PublicJwk>(&jwk).ok());
            match parsed {
                Some((created_at, key)) => keys.push(StoredKey {
                    kid,
                    key,
                    created_at,
                }),
                // One bad row must not take the whole JWKS down.
                None => tracing::warn!(kid, "sqlite: skipping a malformed signing key row"),
            }
        }
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn remove_keys(&self, kids: &[String]) -> Result<()> {
        if kids.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db_error("remove signing keys"))?;
        for kid in kids {
            sqlx::query("DELETE FROM signing_keys WHERE kid = ?1")
                .bind(kid)
                .execute(&mut *tx)
                .await
                .map_err(db_error("remove signing keys"))?;
        }
        tx.commit().await.map_err(db_error("remove signing keys"))?;
        Ok(())
    }
}

/// A [`UserInfoStore`] in the `user_info` table of a [`SqliteDatabase`].
///
/// Every issued token writes user info, and SQLite commits one write at a time: concurrent
/// upserts are therefore queued to one writer task that commits them together, in one
/// statement. An upsert returns once its batch is committed.
#[derive(Debug, Clone)]
pub struct SqliteUserInfoStore {
    pool: SqlitePool,
    writer: UpsertQueue,
}

/// Writes user-info batches to a SQLite pool.
struct SqliteBatch {
    pool: SqlitePool,
}

#[async_trait]
impl WriteBatch for SqliteBatch {
    const NAME: &'static str = "sqlite";

    async fn write(&self, rows: &[Row<'_>]) -> sqlx::Result<()> {
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO user_info (user_entity_ref, user_info, updated_at, created_at) ",
        );
        query.push_values(rows, |mut row, upsert| {
            row.push_bind(upsert.user_entity_ref)
                .push_bind(upsert.json)
                .push_bind(now.as_str())
                .push_bind(now.as_str());
        });
        query.push(
            " ON CONFLICT (user_entity_ref) DO UPDATE \
             SET user_info = excluded.user_info, updated_at = excluded.updated_at",
        );
        query.build().execute(&self.pool).await?;
        Ok(())
    }

    fn error(&self, error: &sqlx::Error) -> Error {
        store_error(error, "sqlite store failed to store user info".to_owned())
    }
}

#[async_trait]
impl UserInfoStore for SqliteUserInfoStore {
    async fn upsert(&self, user_entity_ref: &str, user_info: &Value) -> Result<()> {
        self.writer.upsert(user_entity_ref, user_info).await
    }

    async fn get(&self, user_entity_ref: &str) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT user_info FROM user_info WHERE user_entity_ref = ?1")
            .bind(user_entity_ref)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("read user info"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let json: String = row
            .try_get("user_info")
            .map_err(db_error("read user info"))?;
        let value = serde_json::from_str(&json).map_err(|e| {
            Error::internal(format!(
                "stored user info of {user_entity_ref} is not JSON: {e}"
            ))
        })?;
        Ok(Some(value))
    }
}

/// Unix microseconds, the unit of `ephemeral_records.expires_at`.
fn micros(at: OffsetDateTime) -> i64 {
    // Saturates: OffsetDateTime stays within ±9999 years, far inside i64 microseconds.
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// An [`EphemeralStore`] in the `ephemeral_records` table of a [`SqliteDatabase`]. Processes
/// that open the same file see the same records, and exactly one of them wins a claim.
///
/// Expiry is judged by this process's system clock; expired rows are deleted now and then by
/// the writes that follow them.
#[derive(Debug, Clone)]
pub struct SqliteEphemeralStore {
    pool: SqlitePool,
    sweeper: Sweeper,
}

impl SqliteEphemeralStore {
    /// Deletes expired rows when it is time to; a failure only delays the cleanup.
    async fn sweep(&self, now: OffsetDateTime) {
        if !self.sweeper.due(now) {
            return;
        }
        let swept = sqlx::query("DELETE FROM ephemeral_records WHERE expires_at <= ?1")
            .bind(micros(now))
            .execute(&self.pool)
            .await;
        if let Err(e) = swept {
            tracing::debug!(error = %e, "sqlite: failed to delete expired ephemeral records");
        }
    }
}

#[async_trait]
impl EphemeralStore for SqliteEphemeralStore {
    async fn claim(&self, namespace: &str, key: &str, expires_at: OffsetDateTime) -> Result<bool> {
        let now = OffsetDateTime::now_utc();
        self.sweep(now).await;
        // One statement, and SQLite runs one writer at a time: the row comes back to exactly
        // one claimer of a live key.
        let claimed = sqlx::query(
            "INSERT INTO ephemeral_records (namespace, key, value, expires_at) \
             VALUES (?1, ?2, X'', ?3) \
             ON CONFLICT (namespace, key) DO UPDATE \
             SET value = excluded.value, expires_at = excluded.expires_at \
             WHERE ephemeral_records.expires_at <= ?4 \
             RETURNING 1",
        )
        .bind(namespace)
        .bind(key)
        .bind(micros(expires_at))
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("claim an ephemeral record"))?;
        Ok(claimed.is_some())
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        self.sweep(OffsetDateTime::now_utc()).await;
        sqlx::query(
            "INSERT INTO ephemeral_records (namespace, key, value, expires_at) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (namespace, key) DO UPDATE \
             SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(namespace)
        .bind(key)
        .bind(value)
        .bind(micros(expires_at))
        .execute(&self.pool)
        .await
        .map_err(db_error("store an ephemeral record"))?;
        Ok(())
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT value FROM ephemeral_records \
             WHERE namespace = ?1 AND key = ?2 AND expires_at > ?3",
        )
        .bind(namespace)
        .bind(key)
        .bind(micros(OffsetDateTime::now_utc()))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("read an ephemeral record"))?;
        row.map(|row| row.try_get("value"))
            .transpose()
            .map_err(db_error("read an ephemeral record"))
    }

    async fn remove(&self, namespace: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM ephemeral_records WHERE namespace = ?1 AND key = ?2")
            .bind(namespace)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error("remove an ephemeral record"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_database_keeps_its_data_across_queries() -> Result<()> {
        let db = SqliteDatabase::connect(":memory:").await?;
        let store = db.key_store();
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
            .map_err(|e| Error::internal(e.to_string()))?;
        let mut jwk = serde_json::Map::new();
        jwk.insert("kid".into(), "k1".into());
        let key = StoredKey {
            kid: "k1".into(),
            key: PublicJwk(jwk),
            created_at,
        };
        store.add_key(&key).await?;
        // another handle on the same database sees it
        assert_eq!(db.clone().key_store().list_keys().await?, vec![key]);
        store.remove_keys(&["k1".into()]).await?;
        assert!(store.list_keys().await?.is_empty());

        let users = db.user_info_store();
        assert_eq!(users.get("user:default/jane").await?, None);
        users
            .upsert(
                "user:default/jane",
                &serde_json::json!({"claims": {"a": 1}}),
            )
            .await?;
        users
            .upsert(
                "user:default/jane",
                &serde_json::json!({"claims": {"a": 2}}),
            )
            .await?;
        assert_eq!(
            users.get("user:default/jane").await?,
            Some(serde_json::json!({"claims": {"a": 2}}))
        );
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_upserts_are_batched_and_the_last_one_wins() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
        let db = SqliteDatabase::connect(dir.path().join("users.sqlite")).await?;
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = db.user_info_store();
                tokio::spawn(async move {
                    let user = format!("user:default/u{}", i % 20);
                    store
                        .upsert(&user, &serde_json::json!({"claims": {"n": i}}))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| Error::internal(e.to_string()))??;
        }
        let store = db.user_info_store();
        for u in 0..20 {
            let value = store.get(&format!("user:default/u{u}")).await?;
            let n = value.and_then(|v| v["claims"]["n"].as_i64());
            assert!(n.is_some_and(|n| n % 20 == u), "user {u}: {n:?}");
        }
        store
            .upsert("user:default/u0", &serde_json::json!({"claims": {"n": -1}}))
            .await?;
        assert_eq!(
            store.get("user:default/u0").await?,
            Some(serde_json::json!({"claims": {"n": -1}}))
        );
        db.close().await;
        let closed = store
            .upsert("user:default/u0", &serde_json::json!({}))
            .await
            .err();
        assert!(closed.is_some());
        Ok(())
    }

    #[tokio::test]
    async fn ephemeral_records_are_claimed_once_and_expire() -> Result<()> {
        let db = SqliteDatabase::connect(":memory:").await?;
        let store = db.ephemeral_store();
        let now = OffsetDateTime::now_utc();
        let live = now + time::Duration::minutes(1);
        let past = now - time::Duration::seconds(1);
        assert!(store.claim("ns", "id-1", live).await?);
        assert!(!store.claim("ns", "id-1", live).await?);
        assert!(store.claim("other", "id-1", live).await?);
        // A claim made by `claim` reads as an empty value.
        assert_eq!(store.get("ns", "id-1").await?, Some(Vec::new()));
        // An expired record is as if it had never been written, and can be claimed again.
        store.put("ns", "old", b"stale", past).await?;
        assert_eq!(store.get("ns", "old").await?, None);
        assert!(store.claim("ns", "old", live).await?);

        store.put("ns", "k", b"value", live).await?;
        store.put("ns", "k", b"newer", live).await?;
        assert_eq!(store.get("ns", "k").await?.as_deref(), Some(&b"newer"[..]));
        store.remove("ns", "k").await?;
        assert_eq!(store.get("ns", "k").await?, None);
        store.remove("ns", "missing").await?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claimers_of_a_file_database_have_one_winner() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
        let path = dir.path().join("shared.sqlite");
        // Two handles on one file, as two processes would have.
        let first = SqliteDatabase::connect(&path).await?;
        let second = SqliteDatabase::connect(&path).await?;
        let expiry = OffsetDateTime::now_utc() + time::Duration::minutes(1);
        for round in 0..5 {
            let key = format!("lease-{round}");
            let claims: Vec<_> = (0..16)
                .map(|i| {
                    let store = if i % 2 == 0 {
                        first.ephemeral_store()
                    } else {
                        second.ephemeral_store()
                    };
                    let key = key.clone();
                    tokio::spawn(async move { store.claim("refresh-lease", &key, expiry).await })
                })
                .collect();
            let mut winners = 0;
            for claim in claims {
                if claim.await.map_err(|e| Error::internal(e.to_string()))?? {
                    winners += 1;
                }
            }
            assert_eq!(winners, 1, "round {round}");
        }
        Ok(())
    }
}
