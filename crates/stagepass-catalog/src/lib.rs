//! User directories for [stagepass]: where sign-in resolvers find the Backstage `User` a
//! signed-in person is, and the groups that user owns through.
//!
//! Both sources implement [`stagepass_core::UserDirectory`]; hand one to
//! `AuthBackendBuilder::user_directory` (in `stagepass-axum`) and every sign-in resolver looks
//! users up in it.
//!
//! | source | feature (default) | what it reads |
//! |---|---|---|
//! | [`LocalCatalog`] | `local` (on) | Backstage `User`/`Group` entity YAML files or directories, reloaded when they change |
//! | [`HttpCatalog`] | `http` (on) | a running Backstage catalog (`/api/catalog`), with a service token, timeouts and a short cache |
//!
//! Both answer lookups as Backstage's `findCatalogUser` does: by reference, by annotations,
//! or by field values (`spec.profile.email`); none is a `NotFoundError`, several a
//! `ConflictError` ("User lookup resulted in multiple matches"), never a guess. Ownership refs
//! are the user's ref and its direct groups (`memberOf`), as in Backstage, or optionally also
//! every ancestor group (`transitive_ownership`).
//!
//! # Example
//!
//! ```
//! use stagepass_catalog::LocalCatalog;
//! use stagepass_core::{UserDirectory, UserQuery};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("stagepass-catalog-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let file = dir.join("org.yaml");
//! std::fs::write(&file, r#"
//! apiVersion: backstage.io/v1alpha1
//! kind: User
//! metadata: {name: jane}
//! spec: {profile: {email: jane@example.com}, memberOf: [team-a]}
//! ---
//! apiVersion: backstage.io/v1alpha1
//! kind: Group
//! metadata: {name: team-a}
//! spec: {type: team, parent: engineering, children: []}
//! ---
//! apiVersion: backstage.io/v1alpha1
//! kind: Group
//! metadata: {name: engineering}
//! spec: {type: department, children: []}
//! "#)?;
//!
//! let catalog = LocalCatalog::builder()
//!     .location(&file)
//!     .transitive_ownership(true)
//!     .build()?;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let jane = catalog
//!     .find_user(&UserQuery::filter("spec.profile.email", "jane@example.com"))
//!     .await?;
//! assert_eq!(jane.entity_ref.to_string(), "user:default/jane");
//! let ownership: Vec<String> = catalog
//!     .ownership_entity_refs(&jane)
//!     .await?
//!     .iter()
//!     .map(ToString::to_string)
//!     .collect();
//! assert_eq!(
//!     ownership,
//!     ["user:default/jane", "group:default/team-a", "group:default/engineering"]
//! );
//! # Ok::<_, stagepass_core::Error>(())
//! # })?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! [stagepass]: https://github.com/stagepass/stagepass

#![cfg_attr(test, allow(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "local")]
mod entities;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "local")]
mod local;
#[cfg(any(feature = "local", feature = "http"))]
mod ownership;

#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub use entities::{CatalogSummary, EntityLocation, LoadError};
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::{
    BuildError, DEFAULT_CACHE_TTL, DEFAULT_TIMEOUT, HttpCatalog, HttpCatalogBuilder, ServiceToken,
};
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub use local::{DEFAULT_RELOAD_INTERVAL, LocalCatalog, LocalCatalogBuilder};
