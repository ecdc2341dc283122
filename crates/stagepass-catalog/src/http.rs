//! [`HttpCatalog`]: the Backstage catalog API over HTTP.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use stagepass_core::{EntityRef, Error, Result, UserDirectory, UserEntity, UserQuery, user_entity};
use url::Url;

use crate::ownership;

/// How long a request to the catalog may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a lookup is remembered unless told otherwise.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// At most this many lookups are remembered; beyond it the cache starts afresh.
const MAX_CACHE_ENTRIES: usize = 4096;
/// The expiry of a cached answer whose TTL overflows the clock: thirty years from now.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// How many levels of parent groups transitive ownership follows.
const MAX_GROUP_DEPTH: usize = 32;

/// What clients are told when the catalog cannot answer; the detail goes to the logs.
const UNAVAILABLE: &str = "User catalog is unavailable";

/// A token the catalog accepts from this service (`Authorization: Bearer …`), such as a
/// Backstage static external-access token. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceToken(String);

impl ServiceToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token. Only the request to the catalog should read it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken([redacted])")
    }
}

/// Why an [`HttpCatalog`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL is not an absolute `http` or `https` URL.
    #[error("invalid catalog base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A [`UserDirectory`] backed by a running Backstage catalog, for operators who keep their
/// users there.
///
/// | lookup | request |
/// |---|---|
/// | by reference | `GET {base}/entities/by-name/{kind}/{namespace}/{name}` (404 is "not found") |
/// | by annotations | `GET {base}/entities/by-query?filter=kind=user,metadata.annotations.<k>=<v>&limit=2` |
/// | by fields | `GET {base}/entities/by-query?filter=kind=user,<path>=<v>&limit=2` (`kind=user` only when the filter names no kind) |
/// | ancestors (transitive ownership) | `POST {base}/entities/by-refs` with the groups' refs |
///
/// `by-query` is the paginated query endpoint of current catalogs (Backstage 1.15 and later);
/// the older `GET /entities?filter=` is not used. No match is a `NotFoundError`, more than
/// one a `ConflictError` ("User lookup resulted in multiple matches"). A user's groups come
/// from its `memberOf` relations. Filter values cannot contain `,` (the catalog's filter
/// syntax has no escape for it); such a lookup is an `InputError`.
///
/// Answers (found or not found) are cached for a short time (30 s by default). When the
/// catalog is unreachable, slow, or answers with an error status, lookups fail with a
/// `ServiceUnavailableError` whose message is generic; the detail (URL path, status,
/// transport error) is logged at `warn`. The token never appears in errors or logs, and
/// redirects are not followed, so the token goes nowhere but the configured catalog.
///
/// Cloning is cheap; clones share the cache.
#[derive(Clone)]
pub struct HttpCatalog {
    inner: Arc<Inner>,
}

struct Inner {
    base: Url,
    client: reqwest::Client,
    token: Option<ServiceToken>,
    timeout: Duration,
    cache_ttl: Duration,
    transitive: bool,
    users: Mutex<Cache<Option<UserEntity>>>,
    parents: Mutex<Cache<Vec<EntityRef>>>,
}

impl std::fmt::Debug for HttpCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCatalog")
            .field("base", &self.inner.base.as_str())
            .field("token", &self.inner.token)
            .field("timeout", &self.inner.timeout)
            .field("cache_ttl", &self.inner.cache_ttl)
            .field("transitive_ownership", &self.inner.transitive)
            .finish()
    }
}

/// Builds an [`HttpCatalog`].
#[derive(Debug)]
pub struct HttpCatalogBuilder {
    base_url: String,
    token: Option<ServiceToken>,
    timeout: Duration,
    cache_ttl: Duration,
    transitive: bool,
    client: Option<reqwest::Client>,
}

impl HttpCatalogBuilder {
    /// The token sent as `Authorization: Bearer <token>`. Without one, requests are sent
    /// unauthenticated, which current catalogs refuse.
    #[must_use]
    pub fn token(mut self, token: ServiceToken) -> Self {
        self.token = Some(token);
        self
    }

    /// How long one request may take (10 s by default).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long answers are remembered (30 s by default); zero turns the cache off. A TTL too
    /// long for the clock to represent (such as `Duration::MAX`) keeps answers until the cache
    /// is cleared or full.
    #[must_use]
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Whether ownership refs include every ancestor of the user's groups, read from the
    /// groups' `childOf` relations (Backstage's default is `false`).
    #[must_use]
    pub fn transitive_ownership(mut self, transitive: bool) -> Self {
        self.transitive = transitive;
        self
    }

    /// Uses this HTTP client (proxies, custom roots) instead of a new one. Its redirect
    /// policy is kept as it is.
    #[must_use]
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the catalog client. No request is sent yet.
    pub fn build(self) -> Result<HttpCatalog, BuildError> {
        let mut base = Url::parse(&self.base_url).map_err(|e| BuildError::InvalidBaseUrl {
            url: self.base_url.clone(),
            reason: e.to_string(),
        })?;
        // The URL as shown in errors: without credentials, should someone have put them there.
        let shown = {
            let mut shown = base.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            shown.to_string()
        };
        let invalid = |reason: &str| BuildError::InvalidBaseUrl {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if base.cannot_be_a_base() || base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "expected a base such as http://backstage:7007/api/catalog",
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid("credentials belong in the token, not in the URL"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(BuildError::Client)?,
        };
        Ok(HttpCatalog {
            inner: Arc::new(Inner {
                base,
                client,
                token: self.token,
                timeout: self.timeout,
                cache_ttl: self.cache_ttl,
                transitive: self.transitive,
                users: Mutex::new(Cache::default()),
                parents: Mutex::new(Cache::default()),
            }),
        })
    }
}

impl HttpCatalog {
    /// Starts a builder for the catalog at `base_url`, the catalog plugin's base
    /// (`http://backstage:7007/api/catalog`).
    pub fn builder(base_url: impl Into<String>) -> HttpCatalogBuilder {
        HttpCatalogBuilder {
            base_url: base_url.into(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            cache_ttl: DEFAULT_CACHE_TTL,
            transitive: false,
            client: None,
        }
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        lock(&self.inner.users).clear();
        lock(&self.inner.parents).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers remembered until they expire.
struct Cache<T> {
    entries: HashMap<String, (Instant, T)>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<T: Clone> Cache<T> {
    fn get(&self, key: &str) -> Option<T> {
        self.entries
            .get(key)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, value)| value.clone())
    }

    fn insert(&mut self, key: String, value: T, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        if self.entries.len() >= MAX_CACHE_ENTRIES {
            self.entries.retain(|_, (expires, _)| *expires > now);
            if self.entries.len() >= MAX_CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        // `Instant + Duration` panics on overflow: a TTL past what the clock can represent
        // means thirty years (as tokio's "far future"), or no caching if even that overflows.
        let Some(expires) = now.checked_add(ttl).or_else(|| now.checked_add(FAR_FUTURE)) else {
            return;
        };
        self.entries.insert(key, (expires, value));
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// A request failure, logged in full and reported to the client in short.
fn unavailable(path: &str, detail: impl std::fmt::Display) -> Error {
    tracing::warn!(path, %detail, "user catalog request failed");
    Error::service_unavailable(format!("{UNAVAILABLE}: {detail}"))
}

impl Inner {
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends a request and reads a JSON body; `Ok(None)` for 404.
    async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Option<Value>> {
        let mut request = request
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.secret());
        }
        let response = request.send().await.map_err(|e| {
            let detail = if e.is_timeout() {
                format!("no answer within {:?}", self.timeout)
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                format!("request failed ({})", e.without_url())
            };
            unavailable(path, detail)
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(unavailable(
                path,
                format!(
                    "the catalog refused this service's credentials (HTTP {})",
                    status.as_u16()
                ),
            ));
        }
        if !status.is_success() {
            return Err(unavailable(path, format!("HTTP {}", status.as_u16())));
        }
        let body = response.bytes().await.map_err(|e| {
            unavailable(
                path,
                format!("reading the answer failed ({})", e.without_url()),
            )
        })?;
        match serde_json::from_slice(&body) {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                let excerpt = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
                tracing::debug!(path, body = %excerpt, "user catalog answer is not JSON");
                Err(unavailable(path, format!("the answer is not JSON ({e})")))
            }
        }
    }

    async fn by_ref(&self, entity_ref: &EntityRef) -> Result<Option<UserEntity>> {
        if !entity_ref.is_kind("user") {
            return Ok(None);
        }
        let entity_ref = entity_ref.normalized();
        let url = self.url(&[
            "entities",
            "by-name",
            entity_ref.kind(),
            entity_ref.namespace(),
            entity_ref.name(),
        ]);
        let path = url.path().to_owned();
        match self.send(self.client.get(url), &path).await? {
            None => Ok(None),
            Some(entity) => {
                let user = user_entity(entity)
                    .map_err(|e| unavailable(&path, format!("the answer is not a user ({e})")))?;
                Ok(Some(user))
            }
        }
    }

    async fn by_query(&self, filter: &[(String, String)]) -> Result<Option<UserEntity>> {
        if filter
            .iter()
            .any(|(k, v)| k.contains([',', '=']) || v.contains(','))
        {
            return Err(Error::input(
                "User lookup value cannot be expressed as a catalog filter",
            ));
        }
        let mut parts = Vec::new();
        if !filter.iter().any(|(k, _)| k.eq_ignore_ascii_case("kind")) {
            parts.push("kind=user".to_owned());
        }
        parts.extend(filter.iter().map(|(k, v)| format!("{k}={v}")));
        let mut url = self.url(&["entities", "by-query"]);
        url.query_pairs_mut()
            .append_pair("filter", &parts.join(","))
            .append_pair("limit", "2");
        let path = url.path().to_owned();
        let Some(body) = self.send(self.client.get(url), &path).await? else {
            return Err(unavailable(
                &path,
                "the catalog does not serve /entities/by-query",
            ));
        };
        let items = body
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| unavailable(&path, "the answer has no items"))?;
        let total = body.get("totalItems").and_then(Value::as_u64).unwrap_or(0);
        match items.as_slice() {
            [] => Ok(None),
            [entity] if total <= 1 => user_entity(entity.clone())
                .map(Some)
                .map_err(|e| unavailable(&path, format!("the answer is not a user ({e})"))),
            _ => Err(Error::conflict("User lookup resulted in multiple matches")),
        }
    }

    async fn lookup(&self, query: &UserQuery) -> Result<Option<UserEntity>> {
        match query {
            UserQuery::EntityRef(entity_ref) => self.by_ref(entity_ref).await,
            UserQuery::Annotations(annotations) => {
                let filter: Vec<_> = annotations
                    .iter()
                    .map(|(k, v)| (format!("metadata.annotations.{k}"), v.clone()))
                    .collect();
                self.by_query(&filter).await
            }
            UserQuery::Filter(fields) => {
                let filter: Vec<_> = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                self.by_query(&filter).await
            }
            _ => Err(Error::not_implemented(
                "this kind of user lookup is not supported by the catalog client",
            )),
        }
    }

    /// The parents of each group, from the catalog's `childOf` relations.
    async fn parents(&self, groups: &[EntityRef]) -> Result<HashMap<EntityRef, Vec<EntityRef>>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = lock(&self.parents);
            for group in groups {
                match cache.get(&group.to_string().to_ascii_lowercase()) {
                    Some(parents) => {
                        found.insert(group.clone(), parents);
                    }
                    None => missing.push(group.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let url = self.url(&["entities", "by-refs"]);
        let path = url.path().to_owned();
        let refs: Vec<String> = missing.iter().map(ToString::to_string).collect();
        let body = json!({"entityRefs": refs, "fields": ["kind", "metadata", "relations"]});
        let body = self
            .send(self.client.post(url).json(&body), &path)
            .await?
            .ok_or_else(|| unavailable(&path, "the catalog does not serve /entities/by-refs"))?;
        let items = body
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| unavailable(&path, "the answer has no items"))?;
        let mut cache = lock(&self.parents);
        for (group, item) in missing.into_iter().zip(items) {
            let parents: Vec<EntityRef> = item
                .get("relations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|r| r.get("type").and_then(Value::as_str) == Some("childOf"))
                .filter_map(|r| r.get("targetRef").and_then(Value::as_str))
                .filter_map(|r| r.parse::<EntityRef>().ok())
                .collect();
            cache.insert(
                group.to_string().to_ascii_lowercase(),
                parents.clone(),
                self.cache_ttl,
            );
            found.insert(group, parents);
        }
        Ok(found)
    }
}

/// The cache key of a query: the same lookup, written the same way.
fn cache_key(query: &UserQuery) -> String {
    match query {
        UserQuery::EntityRef(r) => format!("ref\0{}", r.to_string().to_ascii_lowercase()),
        UserQuery::Annotations(a) => {
            let parts: Vec<String> = a.iter().map(|(k, v)| format!("{k}\0{v}")).collect();
            format!("annotations\0{}", parts.join("\0"))
        }
        UserQuery::Filter(f) => {
            let parts: Vec<String> = f.iter().map(|(k, v)| format!("{k}\0{v}")).collect();
            format!("filter\0{}", parts.join("\0"))
        }
        other => format!("{other:?}"),
    }
}

#[async_trait]
impl UserDirectory for HttpCatalog {
    async fn find_user(&self, query: &UserQuery) -> Result<UserEntity> {
        let key = cache_key(query);
        let cached = lock(&self.inner.users).get(&key);
        let user = match cached {
            Some(user) => user,
            None => {
                let user = self.inner.lookup(query).await?;
                lock(&self.inner.users).insert(key, user.clone(), self.inner.cache_ttl);
                user
            }
        };
        user.ok_or_else(|| Error::not_found("User not found"))
    }

    async fn ownership_entity_refs(&self, user: &UserEntity) -> Result<Vec<EntityRef>> {
        let mut refs = ownership::direct(user);
        if !self.inner.transitive {
            return Ok(refs);
        }
        // Fetch one level of parents per request, then compute the closure from what was
        // fetched (each group once, so loops end).
        let mut known: HashMap<EntityRef, Vec<EntityRef>> = HashMap::new();
        let mut level: Vec<EntityRef> = refs
            .iter()
            .filter(|r| r.is_kind("group"))
            .cloned()
            .collect();
        for _ in 0..MAX_GROUP_DEPTH {
            let mut unique = HashSet::new();
            level.retain(|g| !known.contains_key(g) && unique.insert(g.clone()));
            if level.is_empty() {
                break;
            }
            let parents = self.inner.parents(&level).await?;
            level = parents
                .values()
                .flatten()
                .map(EntityRef::normalized)
                .collect();
            known.extend(parents);
        }
        ownership::add_ancestors(&mut refs, |group| {
            known.get(group).cloned().unwrap_or_default()
        });
        Ok(refs)
    }
}
