//! Tests of [`ServerConfig`] reading and of the whole loading pipeline.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

mod backend;
mod durations;
mod properties;
mod reader;

const MINIMAL: &str = "\
app:
  baseUrl: https://backstage.example.com
backend:
  baseUrl: https://backstage.example.com
";

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_texts(texts: &[&str]) -> Result<ServerConfig, ConfigError> {
    let sources: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| ConfigSource::text(format!("<config-{i}>"), *text))
        .collect();
    load_sources(&sources, &no_env)
}

/// MINIMAL plus `extra`, read as two sources `<config-0>` and `<config-1>`.
fn with(extra: &str) -> Result<ServerConfig, ConfigError> {
    load_texts(&[MINIMAL, extra])
}

/// The built-in provider types named `names`.
fn only(names: &[&str]) -> Vec<std::sync::Arc<dyn stagepass_config::ProviderFactory>> {
    crate::builtin_providers()
        .into_iter()
        .filter(|f| names.contains(&f.name()))
        .collect()
}

fn assert_error(result: Result<ServerConfig, ConfigError>, file: &str, key: &str, text: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.file.as_ref(), file, "{err}");
    assert_eq!(err.key, key, "{err}");
    assert!(err.message.contains(text), "{err}");
    assert!(
        err.to_string().starts_with(&format!("{file}: {key}: ")),
        "{err}"
    );
}

#[test]
fn builtin_config_is_a_local_development_setup() {
    let config = load(&[], &no_env, &[]).unwrap();
    assert_eq!(config.sources.len(), 1);
    assert_eq!(config.sources[0].as_ref(), BUILTIN_CONFIG_NAME);
    assert!(config.warnings.is_empty());
    assert_eq!(config.app.base_url.as_str(), "http://localhost:3000/");
    assert_eq!(config.app.origin(), "http://localhost:3000");
    assert_eq!(config.backend.base_url.as_str(), "http://localhost:7007/");
    assert_eq!(
        config.backend.auth_base_url.as_str(),
        "http://localhost:7007/api/auth"
    );
    assert_eq!(config.backend.listen.address(), "127.0.0.1:7007");
    let cors = config.backend.cors.as_ref().unwrap();
    assert_eq!(
        cors.origins.as_deref(),
        Some(&["http://localhost:3000".to_owned()][..])
    );
    assert_eq!(
        cors.methods,
        ["GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"]
    );
    assert!(cors.credentials);
    assert_eq!(
        config.backend.database,
        DatabaseConfig::Sqlite(SqliteLocation::File(
            PathBuf::from(".").join(SQLITE_FILE_NAME)
        ))
    );
    assert_eq!(config.auth.environment, "development");
    assert_eq!(config.auth.key_store, KeyStoreConfig::Database);
    assert_eq!(config.auth.providers.len(), 1);
    assert_eq!(config.auth.providers[0].id, "guest");
    assert!(config.auth.provider("guest").is_some());
}

#[test]
fn defaults() {
    let config = load_texts(&[MINIMAL]).unwrap();
    assert_eq!(config.app.title, None);
    assert_eq!(config.backend.listen.host, DEFAULT_LISTEN_HOST);
    assert_eq!(config.backend.listen.port, DEFAULT_LISTEN_PORT);
    assert_eq!(config.backend.cors, None);
    assert_eq!(
        config.backend.database,
        DatabaseConfig::Sqlite(SqliteLocation::Memory)
    );
    assert_eq!(config.auth.environment, "development");
    assert!(config.auth.session_secret.is_none());
    assert_eq!(
        config.auth.backstage_token_expiration,
        Duration::from_secs(3600)
    );
    assert_eq!(config.auth.identity_token_algorithm, "ES256");
    assert!(config.auth.omit_identity_token_ownership_claim);
    assert_eq!(config.auth.key_store, KeyStoreConfig::Database);
    assert!(config.auth.extra_allowed_origins.is_empty());
    assert!(config.auth.providers.is_empty());
    assert!(config.reader().has("app.baseUrl"));
}

#[test]
fn auth_base_url_ignores_a_trailing_slash_and_keeps_a_path() {
    let config = load_texts(&[
        "app:\n  baseUrl: http://a\nbackend:\n  baseUrl: https://example.com/backstage/\n",
    ])
    .unwrap();
    assert_eq!(
        config.backend.auth_base_url.as_str(),
        "https://example.com/backstage/api/auth"
    );
}

#[test]
fn required_urls() {
    assert_error(
        load_texts(&["backend:\n  baseUrl: http://b\n"]),
        "<config-0>",
        "app.baseUrl",
        "missing required value",
    );
    assert_error(
        load_texts(&["app:\n  baseUrl: http://a\n"]),
        "<config-0>",
        "backend.baseUrl",
        "missing required value",
    );
    assert_error(
        with("app:\n  baseUrl: not a url\n"),
        "<config-1>",
        "app.baseUrl",
        "invalid URL",
    );
    assert_error(
        with("backend:\n  baseUrl: 7007\n"),
        "<config-1>",
        "backend.baseUrl",
        "expected a string, got a number",
    );
}

#[test]
fn auth_settings() {
    let config = with(
        "auth:\n  environment: production\n  session:\n    secret: keyboard-cat\n  identityTokenAlgorithm: RS256\n  omitIdentityTokenOwnershipClaim: false\n  keyStore:\n    provider: memory\n  experimentalExtraAllowedOrigins: ['https://*.example.com']\n",
    )
    .unwrap();
    let auth = &config.auth;
    assert_eq!(auth.environment, "production");
    assert_eq!(
        auth.session_secret.as_ref().unwrap().expose(),
        "keyboard-cat"
    );
    assert!(!format!("{config:?}").contains("keyboard-cat"));
    assert_eq!(auth.identity_token_algorithm, "RS256");
    assert!(!auth.omit_identity_token_ownership_claim);
    assert_eq!(auth.key_store, KeyStoreConfig::Memory);
    assert_eq!(auth.extra_allowed_origins, ["https://*.example.com"]);

    assert_error(
        with("auth:\n  omitIdentityTokenOwnershipClaim: maybe\n"),
        "<config-1>",
        "auth.omitIdentityTokenOwnershipClaim",
        "expected a boolean",
    );
    assert_error(
        with("auth:\n  session:\n    secret: ''\n"),
        "<config-1>",
        "auth.session.secret",
        "empty string",
    );
    assert_error(
        with("auth: production\n"),
        "<config-1>",
        "auth",
        "expected a map, got a string",
    );
}

#[test]
fn token_expiration_forms_and_clamping() {
    let expiration = |value: &str| {
        let config = with(&format!("auth:\n  backstageTokenExpiration: {value}\n")).unwrap();
        (
            config.auth.backstage_token_expiration.as_secs(),
            config.warnings,
        )
    };
    assert_eq!(expiration("'30 minutes'").0, 1800);
    assert_eq!(expiration("1h").0, 3600);
    assert_eq!(expiration("2 hours").0, 7200);
    assert_eq!(expiration("PT1H").0, 3600);
    assert_eq!(expiration("{hours: 2, minutes: 30}").0, 9000);
    assert_eq!(expiration("{minutes: 15}").1.len(), 0);

    let (seconds, warnings) = expiration("{minutes: 5}");
    assert_eq!(seconds, 600);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].file.as_ref(), "<config-1>");
    assert_eq!(warnings[0].key, "auth.backstageTokenExpiration");
    assert!(warnings[0].message.contains("minimum"), "{}", warnings[0]);

    let (seconds, warnings) = expiration("{days: 2}");
    assert_eq!(seconds, 86_400);
    assert!(warnings[0].message.contains("maximum"), "{}", warnings[0]);

    assert_eq!(expiration("{minutes: -5}").0, 600);
    assert!(with("auth:\n  backstageTokenExpiration: '-PT1H'\n").is_err());

    assert_error(
        with("auth:\n  backstageTokenExpiration: soon\n"),
        "<config-1>",
        "auth.backstageTokenExpiration",
        "invalid duration 'soon'",
    );
    assert_error(
        with("auth:\n  backstageTokenExpiration: 3600\n"),
        "<config-1>",
        "auth.backstageTokenExpiration",
        "expected a duration",
    );
    assert_error(
        with("auth:\n  backstageTokenExpiration: {hour: 1}\n"),
        "<config-1>",
        "auth.backstageTokenExpiration",
        "unknown property 'hour'",
    );
}

#[test]
fn key_store_errors() {
    assert_error(
        with("auth:\n  keyStore:\n    provider: firestore\n"),
        "<config-1>",
        "auth.keyStore.provider",
        "not supported",
    );
    assert_error(
        with("auth:\n  keyStore:\n    provider: vault\n"),
        "<config-1>",
        "auth.keyStore.provider",
        "expected one of database, memory, static",
    );
    assert_error(
        with("auth:\n  keyStore:\n    provider: static\n"),
        "<config-1>",
        "auth.keyStore.static.keys",
        "at least one key",
    );
    assert_error(
        with("auth:\n  keyStore:\n    provider: static\n    static:\n      keys: []\n"),
        "<config-1>",
        "auth.keyStore.static.keys",
        "at least one key",
    );
    assert_error(
        with(
            "auth:\n  keyStore:\n    provider: static\n    static:\n      keys:\n        - publicKeyFile: a\n          privateKeyFile: b\n",
        ),
        "<config-1>",
        "auth.keyStore.static.keys[0].keyId",
        "missing required value",
    );
    assert_error(
        with(
            "auth:\n  keyStore:\n    provider: static\n    static:\n      keys:\n        - publicKeyFile: a\n          privateKeyFile: b\n          keyId: k\n          kid: k\n",
        ),
        "<config-1>",
        "auth.keyStore.static.keys[0].kid",
        "unknown key 'kid'",
    );
}

#[test]
fn static_key_files_resolve_against_the_declaring_file() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let base = conf.join("app-config.yaml");
    std::fs::write(&base, MINIMAL).unwrap();
    let keys = dir.path().join("keys.yaml");
    std::fs::write(
        &keys,
        "auth:\n  keyStore:\n    provider: static\n    static:\n      keys:\n        - publicKeyFile: keys/public.pem\n          privateKeyFile: /abs/private.pem\n          keyId: key-1\n        - publicKeyFile: old.pem\n          privateKeyFile: old-private.pem\n          keyId: key-0\n          algorithm: ES384\n",
    )
    .unwrap();
    let config = load(&[base, keys], &no_env, &[]).unwrap();
    let KeyStoreConfig::Static(static_keys) = &config.auth.key_store else {
        panic!("expected static keys, got {:?}", config.auth.key_store);
    };
    assert_eq!(static_keys.len(), 2);
    assert_eq!(
        static_keys[0].public_key_file,
        dir.path().join("keys/public.pem")
    );
    assert_eq!(
        static_keys[0].private_key_file,
        PathBuf::from("/abs/private.pem")
    );
    assert_eq!(static_keys[0].key_id, "key-1");
    assert_eq!(static_keys[0].algorithm, "ES256");
    assert_eq!(static_keys[1].public_key_file, dir.path().join("old.pem"));
    assert_eq!(static_keys[1].algorithm, "ES384");

    // In-memory sources resolve against the working directory.
    let config = with("auth:\n  keyStore:\n    provider: static\n    static:\n      keys:\n        - {publicKeyFile: p.pem, privateKeyFile: k.pem, keyId: k}\n").unwrap();
    let KeyStoreConfig::Static(static_keys) = &config.auth.key_store else {
        panic!("expected static keys");
    };
    assert_eq!(static_keys[0].public_key_file, PathBuf::from("p.pem"));
}

#[test]
fn provider_sections_are_kept_raw_for_factories() {
    let config = load_texts(&[
        MINIMAL,
        "auth:\n  providers:\n    github:\n      development:\n        clientId: abc\n        clientSecret: s3cr3t\n    guest: {}\n",
        "auth:\n  providers:\n    github:\n      development:\n        clientSecrt: typo\n",
    ])
    .unwrap();
    let ids: Vec<&str> = config
        .auth
        .providers
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(ids, ["github", "guest"]);
    assert!(!format!("{config:?}").contains("s3cr3t"));

    let github = config.auth.provider("github").unwrap();
    let reader = github.reader();
    assert_eq!(reader.path(), "auth.providers.github");
    let dev = reader.reader(&config.auth.environment).unwrap();
    assert_eq!(dev.string("clientId").unwrap(), "abc");
    assert_eq!(dev.secret("clientSecret").unwrap().expose(), "s3cr3t");
    let err = dev.check_keys(&["clientId", "clientSecret"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "<config-2>: auth.providers.github.development.clientSecrt: unknown key 'clientSecrt' (expected one of clientId, clientSecret)"
    );
    let err = dev.string("callbackUrl").unwrap_err();
    assert_eq!(err.key, "auth.providers.github.development.callbackUrl");
    assert_eq!(err.file.as_ref(), "<config-1>, <config-2>");

    assert_error(
        with("auth:\n  providers:\n    github: yes\n"),
        "<config-1>",
        "auth.providers.github",
        "expected a map with the provider's settings, got a string",
    );
    // `guest:` with no value is null, which Backstage drops: the provider is not configured.
    let config = with("auth:\n  providers:\n    guest:\n").unwrap();
    assert!(config.auth.providers.is_empty());
}

#[test]
fn environment_substitution_end_to_end() {
    let vars: HashMap<&str, &str> = [
        ("APP_URL", "https://app.example.com"),
        ("SECRET", "from-env"),
        ("PORT", "9000"),
    ]
    .into_iter()
    .collect();
    let env = move |name: &str| vars.get(name).map(|v| (*v).to_owned());
    let sources = [ConfigSource::text(
        "<env>",
        "app:\n  baseUrl: ${APP_URL}\n  title: $${NOT_SUBSTITUTED}\nbackend:\n  baseUrl: ${APP_URL}\n  listen:\n    port: ${PORT}\nauth:\n  session:\n    secret:\n      $env: SECRET\n  environment: ${MISSING}\n",
    )];
    let config = load_sources(&sources, &env).unwrap();
    assert_eq!(config.app.base_url.as_str(), "https://app.example.com/");
    assert_eq!(config.app.title.as_deref(), Some("${NOT_SUBSTITUTED}"));
    assert_eq!(config.backend.listen.port, 9000);
    assert_eq!(config.auth.session_secret.unwrap().expose(), "from-env");
    // A missing variable leaves the key absent, so the default applies.
    assert_eq!(config.auth.environment, "development");
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].key, "auth.environment");
}

#[test]
fn files_on_disk_are_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("app-config.yaml");
    let local = dir.path().join("app-config.local.yaml");
    std::fs::write(&base, MINIMAL).unwrap();
    std::fs::write(&local, "auth:\n  backstageTokenExpiration: later\n").unwrap();
    let err = load(&[base.clone(), local.clone()], &no_env, &[]).unwrap_err();
    assert_eq!(err.file.as_ref(), local.display().to_string());
    assert_eq!(err.key, "auth.backstageTokenExpiration");

    let missing = dir.path().join("nope.yaml");
    let err = load(&[base, missing.clone()], &no_env, &[]).unwrap_err();
    assert_eq!(err.file.as_ref(), missing.display().to_string());
    assert!(err.message.contains("cannot read config file"), "{err}");
}

#[test]
fn builtin_config_enables_providers_whose_variables_are_set() {
    let env = |name: &str| match name {
        "AUTH_GOOGLE_CLIENT_ID" => Some("id".to_owned()),
        "AUTH_GOOGLE_CLIENT_SECRET" => Some("secret".to_owned()),
        "AUTH_GITLAB_CLIENT_ID" => Some("only-half".to_owned()),
        _ => None,
    };
    let config = load(&[], &env, &only(&["google", "gitlab", "okta"])).unwrap();
    let ids: Vec<&str> = config
        .auth
        .providers
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(ids, ["guest", "google"]);
    let google = config.auth.provider("google").unwrap().reader();
    assert_eq!(google.string("development.clientSecret").unwrap(), "secret");
    // not compiled in: not enabled
    let config = load(&[], &env, &only(&["gitlab"])).unwrap();
    assert_eq!(config.auth.providers.len(), 1);
}
