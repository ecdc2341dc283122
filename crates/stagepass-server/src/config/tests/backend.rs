//! Tests of reading `backend.*`: TLS, the listener, CORS and the database.

use std::path::PathBuf;

use super::*;

#[test]
fn https_forms() {
    let https = |extra: &str| with(extra).map(|c| c.backend.https);
    assert!(https("").unwrap().is_none());
    assert!(https("backend:\n  https: false\n").unwrap().is_none());
    assert!(matches!(
        https("backend:\n  https: true\n").unwrap(),
        Some(HttpsConfig::SelfSigned)
    ));
    assert_error(
        with("backend:\n  https:\n    certificate:\n      cert: server.crt\n      key: x\n"),
        "<config-1>",
        "backend.https.certificate.cert",
        "{$file: server.crt}",
    );
    assert_error(
        with("backend:\n  https:\n    cert: x\n"),
        "<config-1>",
        "backend.https.cert",
        "",
    );
    assert_error(
        with("backend:\n  https: yes\n"),
        "<config-1>",
        "backend.https",
        "",
    );
}

#[test]
fn listen_forms() {
    let listen = |extra: &str| with(extra).unwrap().backend.listen;
    let at = |host: &str, port: u16| ListenConfig {
        host: host.to_owned(),
        port,
    };
    assert_eq!(listen("backend:\n  listen: ':7008'\n"), at("0.0.0.0", 7008));
    assert_eq!(listen("backend:\n  listen: '7009'\n"), at("0.0.0.0", 7009));
    assert_eq!(listen("backend:\n  listen: 7010\n"), at("0.0.0.0", 7010));
    assert_eq!(
        listen("backend:\n  listen: 'localhost:80'\n"),
        at("localhost", 80)
    );
    assert_eq!(
        listen("backend:\n  listen: '[::1]:7007'\n"),
        at("::1", 7007)
    );
    assert_eq!(
        listen("backend:\n  listen: '[::1]:7007'\n").address(),
        "[::1]:7007"
    );
    assert_eq!(
        listen("backend:\n  listen:\n    host: 127.0.0.1\n    port: 8080\n"),
        at("127.0.0.1", 8080)
    );
    assert_eq!(
        listen("backend:\n  listen:\n    port: '8081'\n"),
        at("0.0.0.0", 8081)
    );
    assert_eq!(
        listen("backend:\n  listen:\n    host: ''\n    port: 0\n"),
        at("0.0.0.0", 0)
    );
    // Without a port, the explicit port of backend.baseUrl, else 7007.
    assert_eq!(
        listen("backend:\n  baseUrl: http://localhost:7100\n  listen:\n    host: '::'\n"),
        at("::", 7100)
    );
    assert_eq!(
        listen("backend:\n  baseUrl: http://localhost:7101\n"),
        at("0.0.0.0", 7101)
    );
    assert_eq!(
        listen("backend:\n  baseUrl: https://example.com:443\n"),
        at("0.0.0.0", 7007)
    );

    assert_error(
        with("backend:\n  listen: 'localhost'\n"),
        "<config-1>",
        "backend.listen",
        "unable to parse listen address",
    );
    assert_error(
        with("backend:\n  listen: ':70000'\n"),
        "<config-1>",
        "backend.listen",
        "unable to parse listen address",
    );
    assert_error(
        with("backend:\n  listen:\n    port: 70000\n"),
        "<config-1>",
        "backend.listen.port",
        "from 0 to 65535",
    );
    assert_error(
        with("backend:\n  listen: [1]\n"),
        "<config-1>",
        "backend.listen",
        "expected a map, got a list",
    );
}

#[test]
fn cors_forms() {
    let cors = with(
        "backend:\n  cors:\n    origin: [http://localhost:3000, 'https://*.example.com']\n    credentials: 'true'\n    maxAge: 600\n    allowedHeaders: x-requested-with\n",
    )
    .unwrap()
    .backend
    .cors
    .unwrap();
    assert_eq!(
        cors.origins.unwrap(),
        ["http://localhost:3000", "https://*.example.com"]
    );
    assert_eq!(
        cors.methods,
        ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]
    );
    assert!(cors.credentials);
    assert_eq!(cors.max_age, Some(600));
    assert_eq!(cors.allowed_headers.unwrap(), ["x-requested-with"]);
    assert!(cors.exposed_headers.is_empty());

    let cors = with("backend:\n  cors: {}\n")
        .unwrap()
        .backend
        .cors
        .unwrap();
    assert_eq!(cors.origins, None);
    assert!(!cors.credentials);

    assert_error(
        with("backend:\n  cors:\n    credentials: sometimes\n"),
        "<config-1>",
        "backend.cors.credentials",
        "expected a boolean",
    );
    assert_error(
        with("backend:\n  cors:\n    origin: [http://a, 3]\n"),
        "<config-1>",
        "backend.cors.origin[1]",
        "expected a string",
    );
}

#[test]
fn postgres_database_forms() {
    let postgres = |extra: &str| match with(extra).unwrap().backend.database {
        DatabaseConfig::Postgres(pg) => *pg,
        other => panic!("not PostgreSQL: {other:?}"),
    };
    let url = "postgres://auth:s3cret@db.internal:5433/auth_db";
    let pg = postgres(&format!(
        "backend:\n  database:\n    client: pg\n    connection: {url}\n"
    ));
    assert_eq!(pg.url.as_ref().map(SecretString::expose), Some(url));
    assert_eq!(pg.database, "auth_db");
    assert!(!format!("{pg:?}").contains("s3cret"));

    // no database in the string: Backstage's database for the auth plugin
    let pg = postgres("backend:\n  database:\n    client: pg\n    connection: postgresql://db\n");
    assert_eq!(pg.database, "backstage_plugin_auth");

    let pg = postgres(
        "backend:\n  database:\n    client: pg\n    connection:\n      host: db.internal\n      \
         port: 5433\n      user: auth\n      password: s3cret\n      database: auth_db\n",
    );
    assert_eq!(
        pg,
        PostgresConfig {
            url: None,
            host: Some("db.internal".into()),
            port: Some(5433),
            user: Some("auth".into()),
            password: Some(SecretString::new("s3cret")),
            database: "auth_db".into(),
            ssl: None,
            pool_max: None,
            acquire_timeout: None,
        }
    );
    assert!(!format!("{pg:?}").contains("s3cret"));
    // a port from an environment variable is a string
    let pg = postgres(
        "backend:\n  database:\n    client: pg\n    connection:\n      host: db\n      port: '5432'\n",
    );
    assert_eq!(
        (pg.port, pg.database.as_str()),
        (Some(5432), "backstage_plugin_auth")
    );
    // knex's pool settings, as Backstage passes them
    let pg = postgres(
        "backend:\n  database:\n    client: pg\n    connection: postgres://db\n    knexConfig:\n      \
         acquireConnectionTimeout: 2500\n      pool:\n        min: 0\n        max: 25\n",
    );
    assert_eq!(pg.pool_max, Some(25));
    assert_eq!(
        pg.acquire_timeout,
        Some(std::time::Duration::from_millis(2500))
    );
}

#[test]
fn postgres_ssl_forms() {
    let config = |ssl: &str| {
        with(&format!(
            "backend:\n  database:\n    client: pg\n    connection:\n      host: db\n      ssl: {ssl}\n"
        ))
    };
    let ssl = |ssl: &str| match config(ssl).unwrap().backend.database {
        DatabaseConfig::Postgres(pg) => pg.ssl,
        other => panic!("not PostgreSQL: {other:?}"),
    };
    let verified = |ca: Option<&str>| {
        Some(PostgresSsl::Enabled {
            reject_unauthorized: true,
            ca: ca.map(Into::into),
            client: None,
        })
    };
    assert_eq!(ssl("true"), verified(None));
    assert_eq!(ssl("false"), Some(PostgresSsl::Disabled));
    assert_eq!(ssl("{ca: PEM}"), verified(Some("PEM")));
    assert_eq!(
        ssl("{rejectUnauthorized: false}"),
        Some(PostgresSsl::Enabled {
            reject_unauthorized: false,
            ca: None,
            client: None,
        })
    );
    let with_client = ssl("{cert: CERT, key: s3cret}");
    assert!(matches!(
        &with_client,
        Some(PostgresSsl::Enabled { client: Some((cert, key)), .. })
            if cert == "CERT" && key.expose() == "s3cret"
    ));
    assert!(!format!("{with_client:?}").contains("s3cret"));
    assert_error(
        config("{cert: CERT}"),
        "<config-1>",
        "backend.database.connection.ssl",
        "set both cert and key, or neither",
    );
    assert_error(
        config("{rejectUnauthorised: false}"),
        "<config-1>",
        "backend.database.connection.ssl.rejectUnauthorised",
        "unknown key",
    );
    assert_error(
        config("maybe"),
        "<config-1>",
        "backend.database.connection.ssl",
        "expected a boolean",
    );
}

#[test]
fn database_forms() {
    let database = |extra: &str| with(extra).unwrap().backend.database;
    let file = |path: &str| DatabaseConfig::Sqlite(SqliteLocation::File(PathBuf::from(path)));
    let memory = DatabaseConfig::Sqlite(SqliteLocation::Memory);
    assert_eq!(
        database("backend:\n  database:\n    client: better-sqlite3\n"),
        memory
    );
    assert_eq!(
        database("backend:\n  database:\n    client: sqlite3\n    connection: ':memory:'\n"),
        memory
    );
    assert_eq!(
        database(
            "backend:\n  database:\n    client: better-sqlite3\n    connection: data/auth.db\n"
        ),
        file("data/auth.db")
    );
    assert_eq!(
        database(
            "backend:\n  database:\n    client: better-sqlite3\n    connection:\n      filename: /var/lib/auth.db\n"
        ),
        file("/var/lib/auth.db")
    );
    assert_eq!(
        database(
            "backend:\n  database:\n    client: better-sqlite3\n    connection:\n      filename: ':memory:'\n"
        ),
        memory
    );
    assert_eq!(
        database(
            "backend:\n  database:\n    client: better-sqlite3\n    connection:\n      directory: /var/lib/stagepass\n"
        ),
        DatabaseConfig::Sqlite(SqliteLocation::File(
            PathBuf::from("/var/lib/stagepass").join(SQLITE_FILE_NAME)
        ))
    );

    assert_error(
        with("backend:\n  database:\n    client: pg\n    connection: mysql://u:hunter2@x/db\n"),
        "<config-1>",
        "backend.database.connection",
        "expected a PostgreSQL connection string",
    );
    let err =
        with("backend:\n  database:\n    client: pg\n    connection: mysql://u:hunter2@x/db\n")
            .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert_error(
        with("backend:\n  database:\n    client: pg\n    connection:\n      port: seven\n"),
        "<config-1>",
        "backend.database.connection.port",
        "expected a port number",
    );
    assert_error(
        with("backend:\n  database:\n    client: oracle\n"),
        "<config-1>",
        "backend.database.client",
        "unknown database client 'oracle'",
    );
    assert_error(
        with("backend:\n  database:\n    connection: ':memory:'\n"),
        "<config-1>",
        "backend.database.client",
        "missing required value",
    );
    assert_error(
        with(
            "backend:\n  database:\n    client: sqlite3\n    connection:\n      filename: a\n      directory: b\n",
        ),
        "<config-1>",
        "backend.database.connection",
        "either filename or directory",
    );
    assert_error(
        with("backend:\n  database:\n    client: sqlite3\n    connection:\n      host: x\n"),
        "<config-1>",
        "backend.database.connection",
        "needs filename or directory",
    );
}
