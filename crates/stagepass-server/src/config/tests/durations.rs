//! Every duration key the server and its providers read is bounded at start-up.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigReader, DurationBounds};

/// A configuration with `extra` on top of a minimal one.
fn config_with(extra: &str) -> crate::config::ServerConfig {
    let base = "app:\n  baseUrl: https://backstage.example.com\n\
                backend:\n  baseUrl: https://backstage.example.com\n";
    let sources = [
        crate::config::ConfigSource::text("<base>", base),
        crate::config::ConfigSource::text("<extra>", extra),
    ];
    crate::config::load_sources(&sources, &|_: &str| None).unwrap()
}

/// The environments of provider `id` as the server builds them at startup.
fn provider_environments(extra: &str, id: &str) -> Result<usize, crate::config::ConfigError> {
    let config = config_with(extra);
    let section = config.auth.provider(id).unwrap();
    let factories = crate::builtin_providers();
    let name = crate::providers::kind_name(section)?;
    let factory = factories.iter().find(|k| k.name() == name).unwrap();
    let ephemeral: Arc<dyn stagepass::EphemeralStore> =
        Arc::new(stagepass::MemoryEphemeralStore::new());
    let registry = crate::providers::registry_for(factory.as_ref(), &[]);
    crate::providers::oauth_environments(
        section,
        factory.as_ref(),
        "development",
        &ephemeral,
        &registry,
        &mut Vec::new(),
    )
    .map(|environments| environments.len())
}

fn assert_refused(result: Result<usize, crate::config::ConfigError>, key: &str, text: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.key, key, "{err}");
    assert!(err.message.contains(text), "{err}");
}

const GITHUB: &str = "auth:\n  providers:\n    github:\n      development:\n        \
                      clientId: id\n        clientSecret: secret\n";

#[test]
fn session_duration_of_twenty_thousand_years_is_refused_naming_the_key() {
    let key = "auth.providers.github.development.sessionDuration";
    for value in [
        "{years: 20000}",
        "'99999999999999999999 days'",
        "P20000Y",
        "{days: 3651}",
        "{hours: .inf}",
        "{hours: 'NaN'}",
        "{seconds: 0}",
    ] {
        let result = provider_environments(
            &format!("{GITHUB}        sessionDuration: {value}\n"),
            "github",
        );
        let err = result.unwrap_err();
        assert_eq!(err.key, key, "{value}: {err}");
        assert_eq!(err.file.as_ref(), "<extra>", "{value}: {err}");
    }
    assert_refused(
        provider_environments(
            &format!("{GITHUB}        sessionDuration: {{years: 20000}}\n"),
            "github",
        ),
        key,
        "expected a duration from 1 second to 3650 days, got 7300000 days",
    );
    for value in ["{days: 1000}", "{days: 400}", "1h", "P30D", "{years: 1}"] {
        let ok = provider_environments(
            &format!("{GITHUB}        sessionDuration: {value}\n"),
            "github",
        );
        assert_eq!(ok.unwrap(), 1, "{value}");
    }
}

#[test]
fn provider_timeouts_are_bounded() {
    let oauth2 = "auth:\n  providers:\n    corp:\n      provider: oauth2\n      development:\n        \
                  clientId: id\n        clientSecret: secret\n        \
                  authorizationUrl: https://idp.example/authorize\n        \
                  tokenUrl: https://idp.example/token\n";
    let key = "auth.providers.corp.development.timeout";
    for value in ["2h", "{days: 20000}", "'99999999999999999999 days'", "0ms"] {
        assert_refused(
            provider_environments(&format!("{oauth2}        timeout: {value}\n"), "corp"),
            key,
            "expected a duration from 1 millisecond to 1 hour",
        );
    }
    assert_eq!(
        provider_environments(&format!("{oauth2}        timeout: 30s\n"), "corp").unwrap(),
        1
    );
}

#[cfg(feature = "saml")]
#[test]
fn saml_clock_skew_is_bounded() {
    let saml = "auth:\n  providers:\n    saml:\n      development:\n        \
                issuer: stagepass\n        entryPoint: https://idp.example/sso\n        \
                idpIssuer: https://idp.example\n        cert: MIIB\n";
    for value in ["3600001", "86400000", "-1", "1e300", "0.5"] {
        let result = provider_environments(
            &format!("{saml}        acceptedClockSkewMs: {value}\n"),
            "saml",
        );
        assert_refused(
            result,
            "auth.providers.saml.development.acceptedClockSkewMs",
            "expected a whole number of milliseconds from 0 to 3600000",
        );
    }
}

#[test]
fn database_and_catalog_durations_are_bounded() {
    let try_config = |extra: &str| {
        let base = "app:\n  baseUrl: https://backstage.example.com\n\
                    backend:\n  baseUrl: https://backstage.example.com\n";
        let sources = [
            crate::config::ConfigSource::text("<base>", base),
            crate::config::ConfigSource::text("<extra>", extra),
        ];
        crate::config::load_sources(&sources, &|_: &str| None)
    };
    let knex = |value: &str| {
        try_config(&format!(
            "backend:\n  database:\n    client: pg\n    connection: postgres://db.example/x\n    \
             knexConfig:\n      acquireConnectionTimeout: {value}\n"
        ))
    };
    for value in ["3600001", "0", "-5", "1e300", ".inf", "'soon'"] {
        let err = knex(value).unwrap_err();
        assert_eq!(
            err.key, "backend.database.knexConfig.acquireConnectionTimeout",
            "{value}: {err}"
        );
    }
    let ok = knex("60000").unwrap();
    let crate::config::DatabaseConfig::Postgres(pg) = &ok.backend.database else {
        panic!("expected postgres");
    };
    assert_eq!(pg.acquire_timeout, Some(Duration::from_secs(60)));

    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: jane\nspec:\n  memberOf: []\n",
    )
    .unwrap();
    let catalog = |extra: &str| {
        let config = config_with(extra);
        let root = ConfigReader::new(&config.root, "");
        crate::catalog::directory(&root).map(|d| d.is_some())
    };
    let local = |value: &str| {
        format!(
            "catalog:\n  locations:\n    - {{type: file, target: '{}'}}\n  reloadInterval: {value}\n",
            users.display()
        )
    };
    for value in ["2 days", "{years: 20000}", "'99999999999999999999 days'"] {
        let err = catalog(&local(value)).unwrap_err();
        assert_eq!(err.key, "catalog.reloadInterval", "{value}: {err}");
        assert!(
            err.message.contains("from 0 milliseconds to 1 day"),
            "{err}"
        );
    }
    // Zero still turns reloading off (no watcher, so no runtime is needed here).
    assert!(catalog(&local("0ms")).unwrap());
    let api = |key: &str, value: &str| {
        format!("catalog:\n  api:\n    baseUrl: https://catalog.example\n    {key}: {value}\n")
    };
    for (key, value) in [
        ("timeout", "2h"),
        ("timeout", "0ms"),
        ("cacheTtl", "2 days"),
        ("cacheTtl", "{years: 20000}"),
    ] {
        let err = catalog(&api(key, value)).unwrap_err();
        assert_eq!(err.key, format!("catalog.api.{key}"), "{value}: {err}");
    }
}

#[test]
fn token_expiration_that_is_not_a_number_is_refused_not_zero() {
    let base = "app:\n  baseUrl: https://backstage.example.com\n\
                backend:\n  baseUrl: https://backstage.example.com\n";
    for value in [
        "{hours: 'NaN'}",
        "{hours: .nan}",
        "{years: .inf}",
        "{years: 1e308}",
    ] {
        let sources = [
            crate::config::ConfigSource::text("<base>", base),
            crate::config::ConfigSource::text(
                "<extra>",
                format!("auth:\n  backstageTokenExpiration: {value}\n"),
            ),
        ];
        let err = crate::config::load_sources(&sources, &|_: &str| None).unwrap_err();
        assert_eq!(err.key, "auth.backstageTokenExpiration", "{value}: {err}");
    }
}
