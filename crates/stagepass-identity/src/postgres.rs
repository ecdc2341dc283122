//! PostgreSQL key, user-info and ephemeral stores: one database shared by every replica.

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{Connection as _, Row as _};
use stagepass_core::{EphemeralStore, Error, KeyStore, PublicJwk, Result, StoredKey};
use time::OffsetDateTime;

use crate::ephemeral::Sweeper;

use crate::UserInfoStore;
use crate::batch::{Row, UpsertQueue, WriteBatch};

/// The schema, created when missing: the layout of Backstage's auth-backend migrations, so that
/// stagepass and Backstage can share a `backstage_plugin_auth` database.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS signing_keys (
        kid VARCHAR(255) PRIMARY KEY NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        key TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS user_info (
        user_entity_ref VARCHAR(255) PRIMARY KEY NOT NULL,
        user_info TEXT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )",
    // stagepass's own: not in Backstage's schema, which has no such records.
    "CREATE TABLE IF NOT EXISTS ephemeral_records (
        namespace VARCHAR(255) NOT NULL,
        key VARCHAR(255) NOT NULL,
        value BYTEA NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (namespace, key)
    )",
];

/// The advisory lock held while the schema is created, so that replicas starting together do
/// not race on `CREATE TABLE` (`'stagepass'` in ASCII).
const MIGRATION_LOCK: i64 = 0x7374_6167_6570_6173;

/// How many connections a pool opens by default.
const DEFAULT_POOL_SIZE: u32 = 10;

/// How long a query waits for a connection by default before the database counts as
/// unavailable.
const DEFAULT_ACQUIRE_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// Whether a database error means the database cannot serve now (rather than a bad query):
/// SQLSTATE classes 08 (connection exception), 53 (insufficient resources) and 57 (operator
/// intervention, such as a shutdown).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| ["08", "53", "57"].iter().any(|c| code.starts_with(c))),
        _ => false,
    }
}

/// Whether `e` is a database error with SQLSTATE `code`.
fn has_code(e: &sqlx::Error, code: &str) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(code))
}

/// Creates the database that `options` name, through the `postgres` maintenance database. A
/// replica that loses the race to create it finds it created.
async fn create_database(options: &PgConnectOptions) -> Result<()> {
    let name = options.get_database().unwrap_or_default().to_owned();
    if name.is_empty() {
        return Err(Error::input("no PostgreSQL database to create"));
    }
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .map_err(db_error(
            "connect to the postgres database to create the auth database",
        ))?;
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match sqlx::query(&statement).execute(&mut admin).await {
        Ok(_) => tracing::info!(database = name, "postgres: created the database"),
        // 42P04: duplicate_database
        Err(e) if has_code(&e, "42P04") => {}
        Err(e) => return Err(db_error("create the database")(e)),
    }
    let _ = admin.close().await;
    Ok(())
}

/// Maps a database error onto a stagepass error: an unreachable database is a
/// `ServiceUnavailableError`, anything else an internal error. The detail goes to the logs.
fn db_error(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        tracing::error!(error = %e, "postgres: failed to {action}");
        let message = format!("postgres store failed to {action}");
        let error = if is_unavailable(&e) {
            Error::service_unavailable(message)
        } else {
            Error::internal(message)
        };
        error.with_source(e)
    }
}

/// Whether and how the connection to PostgreSQL is encrypted: libpq's `sslmode`, with rustls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostgresTlsMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not checked.
    /// libpq's default, and this crate's unless a URL's `sslmode` says otherwise.
    Prefer,
    /// TLS or no connection, but **the certificate is not checked**: this protects against
    /// eavesdroppers, not against anyone who can intercept the connection. Node's
    /// `rejectUnauthorized: false`.
    Require,
    /// TLS, with a certificate signed by a trusted root (the Mozilla roots and any
    /// [`tls_root_certificate_pem`](PostgresOptions::tls_root_certificate_pem)), for any host
    /// name.
    VerifyCa,
    /// TLS, with a certificate signed by a trusted root and issued for the host connected to:
    /// what a Node client checks by default with `ssl: true`.
    VerifyFull,
}

impl PostgresTlsMode {
    fn ssl_mode(self) -> PgSslMode {
        match self {
            Self::Disable => PgSslMode::Disable,
            Self::Prefer => PgSslMode::Prefer,
            Self::Require => PgSslMode::Require,
            Self::VerifyCa => PgSslMode::VerifyCa,
            Self::VerifyFull => PgSslMode::VerifyFull,
        }
    }

    fn from_ssl_mode(mode: PgSslMode) -> Self {
        match mode {
            PgSslMode::Disable => Self::Disable,
            PgSslMode::Allow | PgSslMode::Prefer => Self::Prefer,
            PgSslMode::Require => Self::Require,
            PgSslMode::VerifyCa => Self::VerifyCa,
            PgSslMode::VerifyFull => Self::VerifyFull,
        }
    }
}

/// How to reach a PostgreSQL database: Backstage's `backend.database.connection`, as a URL or
/// as separate settings.
///
/// Settings left unset fall back to libpq's environment variables (`PGHOST`, `PGPORT`,
/// `PGUSER`, `PGPASSWORD`, `PGDATABASE`) and then to libpq's defaults. `Debug` leaves the
/// password out.
#[derive(Clone)]
pub struct PostgresOptions {
    connect: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: StdDuration,
    create_database: bool,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("user", &self.connect.get_username())
            .field("database", &self.connect.get_database())
            .field("tls", &self.configured_tls_mode())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("create_database_if_missing", &self.create_database)
            .finish_non_exhaustive()
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresOptions {
    /// Options from the environment and libpq's defaults, to be refined with the setters.
    pub fn new() -> Self {
        Self {
            connect: PgConnectOptions::new(),
            max_connections: DEFAULT_POOL_SIZE,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            create_database: false,
        }
    }

    /// Options from a connection URL, `postgres://user:password@host:port/database?…`.
    ///
    /// The error does not repeat the URL, which may hold a password.
    pub fn from_url(url: &str) -> Result<Self> {
        if !["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(Error::input(
                "a PostgreSQL connection URL starts with postgres:// or postgresql://",
            ));
        }
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::input(format!("invalid PostgreSQL connection URL: {e}")))?;
        Ok(Self {
            connect,
            ..Self::new()
        })
    }

    /// The host name, IP address or Unix socket directory.
    #[must_use]
    pub fn host(mut self, host: &str) -> Self {
        self.connect = self.connect.host(host);
        self
    }

    /// The TCP port (5432 by default).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.connect = self.connect.port(port);
        self
    }

    /// The user name.
    #[must_use]
    pub fn user(mut self, user: &str) -> Self {
        self.connect = self.connect.username(user);
        self
    }

    /// The password.
    #[must_use]
    pub fn password(mut self, password: &str) -> Self {
        self.connect = self.connect.password(password);
        self
    }

    /// The database name.
    #[must_use]
    pub fn database(mut self, database: &str) -> Self {
        self.connect = self.connect.database(database);
        self
    }

    /// Whether and how to encrypt the connection. Without it, the URL's `sslmode` (and
    /// `sslrootcert`) or the `PGSSLMODE` environment variable decide, and then
    /// [`PostgresTlsMode::Prefer`].
    #[must_use]
    pub fn tls_mode(mut self, mode: PostgresTlsMode) -> Self {
        self.connect = self.connect.ssl_mode(mode.ssl_mode());
        self
    }

    /// The TLS mode these options connect with.
    pub fn configured_tls_mode(&self) -> PostgresTlsMode {
        PostgresTlsMode::from_ssl_mode(self.connect.get_ssl_mode())
    }

    /// Trusts the certificate authority in `pem` (one or more PEM certificates) besides the
    /// Mozilla roots: the `ca` of Node's TLS options, for a server certificate issued by a
    /// private authority. Only checked in [`VerifyCa`](PostgresTlsMode::VerifyCa) and
    /// [`VerifyFull`](PostgresTlsMode::VerifyFull) modes.
    #[must_use]
    pub fn tls_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.connect = self.connect.ssl_root_cert_from_pem(pem.into());
        self
    }

    /// Authenticates to the server with a client certificate and its private key (PEM): the
    /// `cert` and `key` of Node's TLS options.
    #[must_use]
    pub fn tls_client_certificate_pem(
        mut self,
        certificate: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Self {
        self.connect = self
            .connect
            .ssl_client_cert_from_pem(certificate)
            .ssl_client_key_from_pem(key);
        self
    }

    /// The most connections the pool opens; 10 by default.
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Whether to create the database when it does not exist (as Backstage does), connecting
    /// to the `postgres` maintenance database to do so; off by default.
    #[must_use]
    pub fn create_database_if_missing(mut self, create: bool) -> Self {
        self.create_database = create;
        self
    }

    /// How long a query waits for a connection before failing with a
    /// `ServiceUnavailableError`; 5 seconds by default.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: StdDuration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

/// A PostgreSQL database holding the `signing_keys` and `user_info` tables, shared by every
/// replica that connects to it.
///
/// Cheap to clone: clones share one connection pool. When the database goes away, queries fail
/// with a `ServiceUnavailableError` (503) once [`PostgresOptions::acquire_timeout`] has passed;
/// the pool reconnects by itself when the database is back.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    pool: PgPool,
    user_info: UpsertQueue,
}

impl PostgresDatabase {
    /// Connects to the database at `url` (see [`PostgresOptions::from_url`]) and creates the
    /// tables when missing.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PostgresOptions::from_url(url)?).await
    }

    /// Connects with `options` and creates the tables when missing.
    ///
    /// Must be called within a Tokio runtime: it starts the task that writes user info.
    pub async fn connect_with(options: PostgresOptions) -> Result<Self> {
        let pool_options = || {
            PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .test_before_acquire(true)
        };
        let pool = match pool_options().connect_with(options.connect.clone()).await {
            Ok(pool) => pool,
            Err(e) if options.create_database && has_code(&e, "3D000") => {
                create_database(&options.connect).await?;
                pool_options()
                    .connect_with(options.connect.clone())
                    .await
                    .map_err(db_error("connect"))?
            }
            Err(e) => return Err(db_error("connect")(e)),
        };
        let user_info = UpsertQueue::start(PostgresBatch { pool: pool.clone() });
        let db = Self { pool, user_info };
        db.migrate().await?;
        Ok(db)
    }

    /// Creates the tables when missing, under an advisory lock.
    async fn migrate(&self) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db_error("create its tables"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_error("create its tables"))?;
        for statement in MIGRATIONS {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(db_error("create its tables"))?;
        }
        tx.commit().await.map_err(db_error("create its tables"))
    }

    /// The key store on this database.
    pub fn key_store(&self) -> PostgresKeyStore {
        PostgresKeyStore {
            pool: self.pool.clone(),
        }
    }

    /// The user-info store on this database.
    pub fn user_info_store(&self) -> PostgresUserInfoStore {
        PostgresUserInfoStore {
            pool: self.pool.clone(),
            writer: self.user_info.clone(),
        }
    }

    /// The ephemeral store on this database: one-time ids and refresh hand-offs that every
    /// replica on the database sees.
    pub fn ephemeral_store(&self) -> PostgresEphemeralStore {
        PostgresEphemeralStore {
            pool: self.pool.clone(),
            sweeper: Sweeper::default(),
        }
    }

    /// Closes the connections, waiting for queries in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A [`KeyStore`] in the `signing_keys` table of a [`PostgresDatabase`] (Backstage's
/// `database` key store): every replica on the database publishes every replica's keys.
#[derive(Debug, Clone)]
pub struct PostgresKeyStore {
    pool: PgPool,
}

#[async_trait]
impl KeyStore for PostgresKeyStore {
    async fn add_key(&self, key: &StoredKey) -> Result<()> {
        let jwk = serde_json::to_string(&key.key)
            .map_err(|e| Error::internal(format!("failed to serialize a public key: {e}")))?;
        sqlx::query("INSERT INTO signing_keys (kid, created_at, key) VALUES ($1, $2, $3)")
            .bind(&key.kid)
            .bind(key.created_at)
            .bind(jwk)
            .execute(&self.pool)
            .await
            .map_err(db_error("add a signing key"))?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        // The cast keeps a Backstage-made table with `timestamp` columns readable.
        let rows =
            sqlx::query("SELECT kid, created_at::timestamptz AS created_at, key FROM signing_keys")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error("list signing keys"))?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let kid: String = row.try_get("kid").map_err(db_error("read a signing key"))?;
            let created_at: OffsetDateTime = row
                .try_get("created_at")
                .map_err(db_error("read a signing key"))?;
            let jwk: String = row.try_get("key").map_err(db_error("read a signing key"))?;
            match serde_json::from_str::<PublicJwk>(&jwk) {
                Ok(key) => keys.push(StoredKey {
                    kid,
                    key,
                    created_at,
                }),
                // One bad row must not take the whole JWKS down.
                Err(_) => tracing::warn!(kid, "postgres: skipping a malformed signing key row"),
            }
        }
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn remove_keys(&self, kids: &[String]) -> Result<()> {
        if kids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM signing_keys WHERE kid = ANY($1)")
            .bind(kids)
            .execute(&self.pool)
            .await
            .map_err(db_error("remove signing keys"))?;
        Ok(())
    }
}

/// A [`UserInfoStore`] in the `user_info` table of a [`PostgresDatabase`].
///
/// Concurrent upserts of this process are queued to one writer task that commits them
/// together, in one statement; an upsert returns once its batch is committed, so every replica
/// can answer `/v1/userinfo` for a token as soon as it is issued.
#[derive(Debug, Clone)]
pub struct PostgresUserInfoStore {
    pool: PgPool,
    writer: UpsertQueue,
}

/// Writes user-info batches to a PostgreSQL pool.
struct PostgresBatch {
    pool: PgPool,
}

#[async_trait]
impl WriteBatch for PostgresBatch {
    const NAME: &'static str = "postgres";

    async fn write(&self, rows: &[Row<'_>]) -> sqlx::Result<()> {
        let users: Vec<&str> = rows.iter().map(|row| row.user_entity_ref).collect();
        let infos: Vec<&str> = rows.iter().map(|row| row.json).collect();
        sqlx::query(
            "INSERT INTO user_info (user_entity_ref, user_info, updated_at, created_at) \
             SELECT batch.user_entity_ref, batch.user_info, now(), now() \
             FROM UNNEST($1::text[], $2::text[]) AS batch (user_entity_ref, user_info) \
             ON CONFLICT (user_entity_ref) DO UPDATE \
             SET user_info = excluded.user_info, updated_at = excluded.updated_at",
        )
        .bind(users)
        .bind(infos)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn error(&self, error: &sqlx::Error) -> Error {
        let message = "postgres store failed to store user info";
        if is_unavailable(error) {
            Error::service_unavailable(message)
        } else {
            Error::internal(message)
        }
    }
}

#[async_trait]
impl UserInfoStore for PostgresUserInfoStore {
    async fn upsert(&self, user_entity_ref: &str, user_info: &Value) -> Result<()> {
        self.writer.upsert(user_entity_ref, user_info).await
    }

    async fn get(&self, user_entity_ref: &str) -> Result<Option<Value>> {
        let row = sqlx::query("SELECT user_info FROM user_info WHERE user_entity_ref = $1")
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

/// An [`EphemeralStore`] in the `ephemeral_records` table of a [`PostgresDatabase`]: every
/// replica on the database sees the same records, and exactly one of them wins a claim.
///
/// Expiry is judged by this process's system clock; expired rows are deleted now and then by
/// the writes that follow them.
#[derive(Debug, Clone)]
pub struct PostgresEphemeralStore {
    pool: PgPool,
    sweeper: Sweeper,
}

impl PostgresEphemeralStore {
    /// Deletes expired rows when it is time to; a failure only delays the cleanup.
    async fn sweep(&self, now: OffsetDateTime) {
        if !self.sweeper.due(now) {
            return;
        }
        let swept = sqlx::query("DELETE FROM ephemeral_records WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await;
        if let Err(e) = swept {
            tracing::debug!(error = %e, "postgres: failed to delete expired ephemeral records");
        }
    }
}

#[async_trait]
impl EphemeralStore for PostgresEphemeralStore {
    async fn claim(&self, namespace: &str, key: &str, expires_at: OffsetDateTime) -> Result<bool> {
        let now = OffsetDateTime::now_utc();
        self.sweep(now).await;
        // A concurrent claimer waits for the row lock of the first, then sees a live record
        // and updates nothing: exactly one of them gets a row back.
        let claimed = sqlx::query(
            "INSERT INTO ephemeral_records (namespace, key, value, expires_at) \
             VALUES ($1, $2, ''::bytea, $3) \
             ON CONFLICT (namespace, key) DO UPDATE \
             SET value = excluded.value, expires_at = excluded.expires_at \
             WHERE ephemeral_records.expires_at <= $4 \
             RETURNING 1",
        )
        .bind(namespace)
        .bind(key)
        .bind(expires_at)
        .bind(now)
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
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, key) DO UPDATE \
             SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(namespace)
        .bind(key)
        .bind(value)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_error("store an ephemeral record"))?;
        Ok(())
    }

    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT value FROM ephemeral_records \
             WHERE namespace = $1 AND key = $2 AND expires_at > $3",
        )
        .bind(namespace)
        .bind(key)
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("read an ephemeral record"))?;
        row.map(|row| row.try_get("value"))
            .transpose()
            .map_err(db_error("read an ephemeral record"))
    }

    async fn remove(&self, namespace: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM ephemeral_records WHERE namespace = $1 AND key = $2")
            .bind(namespace)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_error("remove an ephemeral record"))?;
        Ok(())
    }
}
