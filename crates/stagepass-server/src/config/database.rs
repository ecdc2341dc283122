//! `backend.database`: SQLite or PostgreSQL, in Backstage's (knex's) shapes.

use std::path::PathBuf;

use stagepass_config::{ConfigError, ConfigReader, DurationBounds, SecretString};
use url::Url;

/// The SQLite file created in `backend.database.connection.directory`.
pub(crate) const SQLITE_FILE_NAME: &str = "stagepass.sqlite";
/// The PostgreSQL database used when `backend.database.connection` names none: Backstage's
/// database for the auth plugin (`backstage_plugin_` + the plugin id).
pub(crate) const DEFAULT_POSTGRES_DATABASE: &str = "backstage_plugin_auth";

/// `backend.database`: where the auth data (signing keys, sessions, user info) lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DatabaseConfig {
    /// SQLite (`client: better-sqlite3` or `sqlite3`).
    Sqlite(SqliteLocation),
    /// PostgreSQL (`client: pg`).
    Postgres(Box<PostgresConfig>),
}

/// How to reach a PostgreSQL database, from `backend.database.connection`: a connection string
/// (`postgres://user:password@host:port/database`) or Backstage's object form
/// `{host, port, user, password, database}`. Unset values fall back to libpq's environment
/// variables (`PGHOST`, …) and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PostgresConfig {
    /// The connection string, when `connection` is one; a secret, as it may hold a password.
    pub(crate) url: Option<SecretString>,
    /// `connection.host`.
    pub(crate) host: Option<String>,
    /// `connection.port`.
    pub(crate) port: Option<u16>,
    /// `connection.user`.
    pub(crate) user: Option<String>,
    /// `connection.password`.
    pub(crate) password: Option<SecretString>,
    /// `connection.database` or the connection string's path; [`DEFAULT_POSTGRES_DATABASE`]
    /// when neither names one. Created when missing, as Backstage does.
    pub(crate) database: String,
    /// `connection.ssl`; when absent, the connection string's `sslmode` or `PGSSLMODE` decide.
    pub(crate) ssl: Option<PostgresSsl>,
    /// `knexConfig.pool.max`: the most connections this process opens.
    pub(crate) pool_max: Option<u32>,
    /// `knexConfig.acquireConnectionTimeout`: how long a request waits for a connection before
    /// it is answered 503.
    pub(crate) acquire_timeout: Option<std::time::Duration>,
}

/// `backend.database.connection.ssl`, as node-postgres reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PostgresSsl {
    /// `ssl: false`: plain TCP.
    Disabled,
    /// `ssl: true` or `ssl: {…}`: TLS.
    Enabled {
        /// `rejectUnauthorized` (`true` by default): check the certificate and the host name.
        reject_unauthorized: bool,
        /// `ca`: the PEM certificates of further trusted authorities.
        ca: Option<String>,
        /// `cert` and `key`: a client certificate and its private key, PEM.
        client: Option<(String, SecretString)>,
    },
}

/// Where a SQLite database lives.
///
/// From `backend.database.connection`: absent or `':memory:'` (as a string or as `filename`)
/// means in memory; a string or `{filename: path}` names the file; `{directory: dir}` means the
/// file [`SQLITE_FILE_NAME`] in that directory. Relative paths are relative to the working
/// directory, as in Backstage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SqliteLocation {
    /// An in-memory database, lost when the server stops.
    Memory,
    /// A database file.
    File(PathBuf),
}

pub(super) fn read_database(backend: &ConfigReader<'_>) -> Result<DatabaseConfig, ConfigError> {
    let Some(database) = backend.optional_reader("database")? else {
        return Ok(DatabaseConfig::Sqlite(SqliteLocation::Memory));
    };
    let client = database.string("client")?;
    match client.as_str() {
        "better-sqlite3" | "sqlite3" => {}
        "pg" => {
            return read_postgres(&database).map(|pg| DatabaseConfig::Postgres(Box::new(pg)));
        }
        "mysql" | "mysql2" => {
            return Err(database.error("client", "MySQL is not supported by stagepass"));
        }
        other => {
            return Err(database.error(
                "client",
                format!(
                    "unknown database client '{other}'; expected better-sqlite3, sqlite3 or pg"
                ),
            ));
        }
    }
    let location = match database.get("connection")? {
        None => SqliteLocation::Memory,
        Some(value) if value.as_str().is_some() => sqlite_file(database.string("connection")?),
        Some(_) => {
            let connection = database.reader("connection")?;
            let filename = connection.optional_string("filename")?;
            let directory = connection.optional_string("directory")?;
            match (filename, directory) {
                (Some(_), Some(_)) => {
                    return Err(connection.error("", "set either filename or directory, not both"));
                }
                (Some(filename), None) => sqlite_file(filename),
                (None, Some(directory)) => {
                    SqliteLocation::File(PathBuf::from(directory).join(SQLITE_FILE_NAME))
                }
                (None, None) => {
                    return Err(connection.error(
                        "",
                        "a SQLite connection needs filename or directory (or the string ':memory:')",
                    ));
                }
            }
        }
    };
    Ok(DatabaseConfig::Sqlite(location))
}

fn read_postgres(database: &ConfigReader<'_>) -> Result<PostgresConfig, ConfigError> {
    let mut config = PostgresConfig {
        url: None,
        host: None,
        port: None,
        user: None,
        password: None,
        database: DEFAULT_POSTGRES_DATABASE.to_owned(),
        ssl: None,
        pool_max: None,
        acquire_timeout: None,
    };
    // Backstage passes `knexConfig` to knex; the pool settings mean the same here.
    if let Some(knex) = database.optional_reader("knexConfig")? {
        config.acquire_timeout =
            knex.optional_millis_within("acquireConnectionTimeout", DurationBounds::TIMEOUT)?;
        if let Some(pool) = knex.optional_reader("pool")? {
            config.pool_max = pool
                .optional_integer("max", 1, 1000)?
                .and_then(|n| u32::try_from(n).ok());
        }
    }
    match database.get("connection")? {
        None => {}
        Some(value) if value.as_str().is_some() => {
            let url = database.secret("connection")?;
            // The messages below never repeat the string: it may hold a password.
            let parsed = Url::parse(url.expose())
                .ok()
                .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"));
            let Some(parsed) = parsed else {
                return Err(database.error(
                    "connection",
                    "expected a PostgreSQL connection string, \
                     postgres://user:password@host:port/database, or an object \
                     {host, port, user, password, database}",
                ));
            };
            let name = parsed.path().trim_start_matches('/');
            if !name.is_empty() {
                config.database = percent_decode(name);
            }
            config.url = Some(url);
        }
        Some(_) => {
            let connection = database.reader("connection")?;
            config.host = connection.optional_string("host")?;
            config.port = match connection.get("port")? {
                None => None,
                Some(value) if value.as_str().is_some() => {
                    let port = connection.string("port")?;
                    Some(port.trim().parse().map_err(|_| {
                        connection.error("port", format!("expected a port number, got '{port}'"))
                    })?)
                }
                Some(_) => connection
                    .optional_integer("port", 1, i64::from(u16::MAX))?
                    .and_then(|n| u16::try_from(n).ok()),
            };
            config.user = connection.optional_string("user")?;
            config.password = connection.optional_secret("password")?;
            if let Some(name) = connection.optional_string("database")? {
                config.database = name;
            }
            config.ssl = read_postgres_ssl(&connection)?;
        }
    }
    Ok(config)
}

/// `connection.ssl`: a boolean, or an object of Node TLS options.
fn read_postgres_ssl(connection: &ConfigReader<'_>) -> Result<Option<PostgresSsl>, ConfigError> {
    match connection.get("ssl")? {
        None => Ok(None),
        Some(value) if value.as_map().is_none() => Ok(Some(if connection.bool("ssl")? {
            PostgresSsl::Enabled {
                reject_unauthorized: true,
                ca: None,
                client: None,
            }
        } else {
            PostgresSsl::Disabled
        })),
        Some(_) => {
            let ssl = connection.reader("ssl")?;
            ssl.check_keys(&["rejectUnauthorized", "ca", "cert", "key"])?;
            let client = match (ssl.optional_string("cert")?, ssl.optional_secret("key")?) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err(ssl.error("", "set both cert and key, or neither")),
            };
            Ok(Some(PostgresSsl::Enabled {
                reject_unauthorized: ssl.optional_bool("rejectUnauthorized")?.unwrap_or(true),
                ca: ssl.optional_string("ca")?,
                client,
            }))
        }
    }
}

/// Decodes `%XX` escapes in a URL path segment.
fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(_, value)| value.into_owned())
}

fn sqlite_file(name: String) -> SqliteLocation {
    if name == ":memory:" {
        SqliteLocation::Memory
    } else {
        SqliteLocation::File(PathBuf::from(name))
    }
}
