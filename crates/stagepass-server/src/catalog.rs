//! The user directory sign-in resolvers look users up in: `catalog.locations` (Backstage's
//! key; `type: file` entries are read as the local catalog) or `catalog.api` (the Backstage
//! catalog over HTTP).
//!
//! ```yaml
//! catalog:
//!   locations:
//!     - type: file
//!       target: ./org            # a file or a directory, relative to this config file
//!   reloadInterval: 10s          # 0 turns reloading off
//!   transitiveOwnership: false   # own through parent groups too
//! # or
//! catalog:
//!   api:
//!     baseUrl: http://backstage:7007/api/catalog
//!     token: ${CATALOG_SERVICE_TOKEN}
//!     timeout: 10s
//!     cacheTtl: 30s
//! ```

use std::sync::Arc;
use std::time::Duration;

use stagepass::UserDirectory;
use stagepass::catalog::{HttpCatalog, LocalCatalog, ServiceToken};

use crate::config::{ConfigError, ConfigReader, DurationBounds, path_relative_to_declaring_file};

/// How often a local catalog is checked for changes unless configured.
const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// The configured directory, or `None` when `catalog` configures none.
pub(crate) fn directory(
    root: &ConfigReader<'_>,
) -> Result<Option<Arc<dyn UserDirectory>>, ConfigError> {
    let catalog = root.section("catalog")?;
    let transitive = catalog
        .optional_bool("transitiveOwnership")?
        .unwrap_or(false);
    let mut files = Vec::new();
    for location in catalog.reader_list("locations")? {
        match location.optional_string("type")?.as_deref() {
            Some("file") => files.push(path_relative_to_declaring_file(&location, "target")?),
            other => tracing::warn!(
                "{}: location of type {other:?} skipped: the user directory reads `type: file` \
                 locations only",
                location.path()
            ),
        }
    }
    let api = catalog.optional_reader("api")?;
    match (files.is_empty(), api) {
        (false, Some(api)) => Err(api.error(
            "",
            "configure either catalog.locations (files) or catalog.api, not both",
        )),
        (true, None) => Ok(None),
        (false, None) => {
            let mut builder = LocalCatalog::builder().transitive_ownership(transitive);
            for file in &files {
                builder = builder.location(file);
            }
            let local = builder
                .build()
                .map_err(|e| catalog.error("locations", e.to_string()))?;
            let interval = catalog
                .optional_duration_within("reloadInterval", DurationBounds::INTERVAL)?
                .unwrap_or(DEFAULT_RELOAD_INTERVAL);
            if !interval.is_zero() {
                // The watcher ends when the catalog is dropped.
                drop(local.watch(interval));
            }
            let summary = local.summary();
            tracing::info!(?summary, "user catalog loaded");
            Ok(Some(Arc::new(local)))
        }
        (true, Some(api)) => {
            api.check_keys(&["baseUrl", "token", "timeout", "cacheTtl"])?;
            let mut builder =
                HttpCatalog::builder(api.url("baseUrl")?.as_str()).transitive_ownership(transitive);
            if let Some(token) = api.optional_secret("token")? {
                builder = builder.token(ServiceToken::new(token.expose()));
            }
            if let Some(timeout) =
                api.optional_duration_within("timeout", DurationBounds::TIMEOUT)?
            {
                builder = builder.timeout(timeout);
            }
            if let Some(ttl) = api.optional_duration_within("cacheTtl", DurationBounds::INTERVAL)? {
                builder = builder.cache_ttl(ttl);
            }
            let http = builder.build().map_err(|e| api.error("", e.to_string()))?;
            Ok(Some(Arc::new(http)))
        }
    }
}
