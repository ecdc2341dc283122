//! [`LocalCatalog`]: Backstage `User` and `Group` entity files on disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use stagepass_core::{EntityRef, Result, UserDirectory, UserEntity, UserQuery};

use crate::entities::{CatalogSummary, LoadError, Snapshot, SnapshotBuilder};
use crate::ownership;

/// How often [`LocalCatalog::watch`] is usually asked to look for changes.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// How deep directories are searched for entity files (a guard against symlink loops).
const MAX_DIRECTORY_DEPTH: usize = 32;

/// A [`UserDirectory`] over Backstage entity YAML files: the `User` and `Group` entities of
/// one or more files or directories, as a Backstage catalog with `catalog.locations:
/// [{type: file, target: …}]` would hold them.
///
/// - Files may hold several YAML documents (`---`); a directory is searched recursively for
///   `*.yaml` and `*.yml` files (hidden files and directories are skipped; a file named as a
///   location is read whatever its extension). Entities of other kinds are ignored.
/// - Relations are computed as the catalog computes them: a user's groups (`memberOf`) are
///   its `spec.memberOf` plus the groups naming it in `spec.members`; a group's parents are
///   its `spec.parent` plus the groups naming it in `spec.children`. References are
///   normalised (`user:default/jane`); a group reference without a namespace is in the
///   namespace of the entity that wrote it.
/// - Entities are checked as they are read; an error names the file, the document and the
///   entity. Two entities with the same reference are an error.
/// - Ownership refs are the user and its direct groups, as in Backstage; with
///   [`transitive_ownership`](LocalCatalogBuilder::transitive_ownership) also every ancestor
///   group (parents of parents, loops ignored).
/// - [`reload`](Self::reload) reads the files again; [`watch`](Self::watch) does so in the
///   background whenever a file changes. A load that fails keeps the previous catalog.
///
/// Cloning is cheap; clones share the loaded catalog.
#[derive(Clone)]
pub struct LocalCatalog {
    inner: Arc<Inner>,
}

struct Inner {
    locations: Vec<PathBuf>,
    transitive: bool,
    snapshot: RwLock<Arc<Snapshot>>,
    /// The files and their modification times as of the last load attempt.
    fingerprint: Mutex<Option<Fingerprint>>,
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

impl std::fmt::Debug for LocalCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCatalog")
            .field("locations", &self.inner.locations)
            .field("transitive_ownership", &self.inner.transitive)
            .field("summary", &self.summary())
            .finish()
    }
}

/// Builds a [`LocalCatalog`].
#[derive(Debug, Clone, Default)]
pub struct LocalCatalogBuilder {
    locations: Vec<PathBuf>,
    transitive: bool,
}

impl LocalCatalogBuilder {
    /// Adds a file, or a directory searched recursively for `*.yaml` and `*.yml` files.
    #[must_use]
    pub fn location(mut self, path: impl Into<PathBuf>) -> Self {
        self.locations.push(path.into());
        self
    }

    /// Whether ownership refs include every ancestor of the user's groups, not only the
    /// groups themselves (Backstage's default is `false`).
    #[must_use]
    pub fn transitive_ownership(mut self, transitive: bool) -> Self {
        self.transitive = transitive;
        self
    }

    /// Loads the catalog.
    pub fn build(self) -> Result<LocalCatalog, LoadError> {
        if self.locations.is_empty() {
            return Err(LoadError::NoLocations);
        }
        let inner = Inner {
            locations: self.locations,
            transitive: self.transitive,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            fingerprint: Mutex::new(None),
        };
        inner.reload()?;
        Ok(LocalCatalog {
            inner: Arc::new(inner),
        })
    }
}

impl LocalCatalog {
    /// Starts a builder.
    pub fn builder() -> LocalCatalogBuilder {
        LocalCatalogBuilder::default()
    }

    /// Loads one file or directory, with Backstage's default ownership.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, LoadError> {
        Self::builder().location(path).build()
    }

    /// The counts of the catalog in use.
    pub fn summary(&self) -> CatalogSummary {
        self.inner.snapshot().summary
    }

    /// The user with this reference, if the catalog has it.
    pub fn user(&self, entity_ref: &EntityRef) -> Option<UserEntity> {
        self.inner.snapshot().by_ref.get(entity_ref).cloned()
    }

    /// Reads all files again and replaces the catalog. On error the previous catalog stays in
    /// use.
    pub fn reload(&self) -> Result<CatalogSummary, LoadError> {
        self.inner.reload()
    }

    /// Reloads when a file was added, removed or modified since the last load attempt;
    /// `Ok(None)` when nothing changed. A failed attempt is not repeated until the files
    /// change again.
    pub fn reload_if_changed(&self) -> Result<Option<CatalogSummary>, LoadError> {
        let (files, fingerprint) = self.inner.scan()?;
        let unchanged = self.inner.fingerprint().as_ref() == Some(&fingerprint);
        if unchanged {
            return Ok(None);
        }
        self.inner.load(&files, fingerprint).map(Some)
    }

    /// Looks for changes every `interval` in a background task, reloading when a file
    /// changed and then stayed unchanged for one more interval (so a file being written is
    /// not read half-way). Successes are logged at `info`, failures at `error` (once per change), and a
    /// failure keeps the previous catalog. The task ends when every clone of the catalog is
    /// dropped, or when the returned handle is aborted.
    ///
    /// Must be called within a Tokio runtime.
    pub fn watch(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            let pending = Arc::new(Mutex::new(None));
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let pending = Arc::clone(&pending);
                let outcome = tokio::task::spawn_blocking(move || {
                    let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
                    inner.reload_when_settled(&mut pending)
                })
                .await;
                match outcome {
                    Ok(Ok(Some(summary))) => tracing::info!(
                        files = summary.files,
                        users = summary.users,
                        groups = summary.groups,
                        "user catalog reloaded"
                    ),
                    Ok(Ok(None)) => {}
                    Ok(Err(error)) => tracing::error!(
                        %error,
                        "user catalog reload failed; keeping the previous catalog"
                    ),
                    Err(error) => tracing::error!(%error, "user catalog reload task failed"),
                }
            }
        })
    }
}

impl Inner {
    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn fingerprint(&self) -> std::sync::MutexGuard<'_, Option<Fingerprint>> {
        self.fingerprint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads when the files changed since the last load and have not changed since the
    /// previous look (`pending`), so that a file caught half-written (an editor truncating,
    /// then writing) is not loaded.
    fn reload_when_settled(
        &self,
        pending: &mut Option<Fingerprint>,
    ) -> Result<Option<CatalogSummary>, LoadError> {
        let (files, fingerprint) = self.scan()?;
        if self.fingerprint().as_ref() == Some(&fingerprint) {
            *pending = None;
            return Ok(None);
        }
        if pending.as_ref() != Some(&fingerprint) {
            *pending = Some(fingerprint);
            return Ok(None);
        }
        *pending = None;
        self.load(&files, fingerprint).map(Some)
    }

    fn reload(&self) -> Result<CatalogSummary, LoadError> {
        let (files, fingerprint) = self.scan()?;
        self.load(&files, fingerprint)
    }

    /// Loads `files`, recording `fingerprint` (taken before reading, so a change made while
    /// reading is seen on the next look) whatever the outcome.
    fn load(
        &self,
        files: &[PathBuf],
        fingerprint: Fingerprint,
    ) -> Result<CatalogSummary, LoadError> {
        *self.fingerprint() = Some(fingerprint);
        let mut builder = SnapshotBuilder::default();
        for file in files {
            builder.add_file(file)?;
        }
        let snapshot = builder.build()?;
        let summary = snapshot.summary;
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        Ok(summary)
    }

    /// The entity files of every location, and their sizes and modification times.
    fn scan(&self) -> Result<(Vec<PathBuf>, Fingerprint), LoadError> {
        let mut files = Vec::new();
        for location in &self.locations {
            if location.is_dir() {
                collect_dir(location, 0, &mut files)?;
            } else {
                // Missing or not: reading it reports the error, and its absence is part of
                // the fingerprint, so a vanished file is reported once, not at every look.
                files.push(location.clone());
            }
        }
        let fingerprint = files
            .iter()
            .map(|file| {
                let metadata = std::fs::metadata(file).ok();
                let modified = metadata.as_ref().and_then(|m| m.modified().ok());
                let len = metadata.map_or(0, |m| m.len());
                (file.clone(), modified, len)
            })
            .collect();
        Ok((files, fingerprint))
    }
}

fn collect_dir(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    if depth > MAX_DIRECTORY_DEPTH {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io)?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_dir(&path, depth + 1, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
        {
            files.push(path);
        }
    }
    Ok(())
}

#[async_trait]
impl UserDirectory for LocalCatalog {
    async fn find_user(&self, query: &UserQuery) -> Result<UserEntity> {
        let snapshot = self.inner.snapshot();
        if let UserQuery::EntityRef(entity_ref) = query {
            if !entity_ref.is_kind("user") {
                return Err(stagepass_core::Error::not_found("User not found"));
            }
            return snapshot
                .by_ref
                .get(entity_ref)
                .cloned()
                .ok_or_else(|| stagepass_core::Error::not_found("User not found"));
        }
        snapshot.directory.find_user(query).await
    }

    async fn ownership_entity_refs(&self, user: &UserEntity) -> Result<Vec<EntityRef>> {
        let mut refs = ownership::direct(user);
        if self.inner.transitive {
            let snapshot = self.inner.snapshot();
            ownership::add_ancestors(&mut refs, |group| {
                snapshot.parents.get(group).cloned().unwrap_or_default()
            });
        }
        Ok(refs)
    }
}
