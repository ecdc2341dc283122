//! The HTTP handlers of `/api/auth`, one module per route, around the value they share: the
//! environment of a provider that a request selected ([`ProviderEnv`]).
//!
//! Every handler produces a [`Handled`] and answers it through [`RequestLine::answer`], the one
//! place where a failure becomes Backstage's error body. Failures of a login that a popup or a
//! redirect reports to the app are answered by the callback itself.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use axum::routing::{any, get};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use stagepass_core::{Authenticated, Error, IssuedToken, Params, SignInInfo, SignInResolver};

use crate::backend::{AuthBackend, Inner, Provider, ResolverContext};
use crate::error::{Handled, RequestLine};

mod callback;
mod logout;
mod metadata;
mod provider_env;
mod refresh;
mod start;
mod well_known;

use provider_env::{Environments, ProviderEnv};

impl AuthBackend {
    /// The routes, to be nested under the [mount path](AuthBackend::mount_path) (`/api/auth`
    /// by default), for example with `Router::new().nest("/api/auth", backend.router())`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(well_known::openid_configuration),
            )
            .route("/.well-known/jwks.json", get(well_known::jwks))
            .route("/v1/userinfo", get(well_known::userinfo))
            .route("/v1/token", any(not_implemented))
            .route("/{provider}/start", any(start::start))
            .route("/{provider}/handler/frame", any(callback::frame))
            .route("/{provider}/refresh", any(refresh::refresh))
            .route("/{provider}/logout", any(logout::logout))
            .route("/{provider}/metadata", get(metadata::metadata))
            .fallback(fallback)
            .with_state(self.inner.clone())
    }

    /// The routes nested under the [mount path](AuthBackend::mount_path), ready to be merged
    /// into an application (`Router::new().merge(backend.mounted_router())`).
    pub fn mounted_router(&self) -> Router {
        // The builder admits only mount paths of one or more plain segments, which axum
        // nests a router under without complaint.
        Router::new().nest(&self.inner.mount_path, self.router())
    }
}

/// The backend, as the handlers receive it.
type AppState = State<Arc<Inner>>;

/// The parameters of the query string.
fn query_params(uri: &OriginalUri) -> Params {
    uri.0
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect::<Params>()
        })
        .unwrap_or_default()
}

/// The provider `id`; `NotFoundError`, worded by whether it is installed, when it is not
/// configured.
fn lookup<'a>(inner: &'a Inner, id: &str) -> Result<&'a Provider, Error> {
    inner.providers.get(id).ok_or_else(|| {
        if inner.installed.contains(id) {
            Error::not_found(format!("No auth provider registered for '{id}'"))
        } else {
            unknown_provider(id)
        }
    })
}

/// The environments of the OAuth-style provider `id`; `NotImplementedError` for a provider
/// that identifies users from the request.
fn oauth_environments<'a>(inner: &'a Inner, id: &str) -> Result<&'a Environments, Error> {
    match lookup(inner, id)? {
        Provider::OAuth(envs) => Ok(envs),
        Provider::Proxy { .. } => Err(Error::not_implemented("Not implemented")),
    }
}

/// What Backstage answers for a route it does not serve, such as a method other than the
/// route's.
fn unknown_provider(id: &str) -> Error {
    Error::not_found(format!("Unknown auth provider '{id}'"))
}

/// Refresh and logout are called by the app's JavaScript only.
fn check_requested_with(headers: &HeaderMap) -> Result<(), Error> {
    match headers.get("x-requested-with") {
        Some(v) if v.as_bytes() == b"XMLHttpRequest" => Ok(()),
        _ => Err(Error::authentication("Invalid X-Requested-With header")),
    }
}

/// A JSON body that no cache keeps.
fn json_response(body: &impl serde::Serialize) -> Response {
    let mut response = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A `302 Found` to `target`.
fn redirect(target: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(location) = HeaderValue::try_from(target) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Signs the user in with `resolver`; `None` without one (delegated access only).
async fn sign_in(
    inner: &Inner,
    resolver: Option<&dyn SignInResolver>,
    authenticated: &Authenticated,
) -> Result<Option<IssuedToken>, Error> {
    let Some(resolver) = resolver else {
        return Ok(None);
    };
    let info = SignInInfo {
        profile: authenticated.profile.clone(),
        attributes: authenticated.attributes.clone(),
    };
    let ctx = ResolverContext { inner };
    resolver.resolve(&info, &ctx).await.map(Some)
}

/// `/v1/token`, which Backstage does not implement either.
async fn not_implemented(line: RequestLine) -> Response {
    line.answer(Err(Error::not_implemented("Not implemented")))
}

/// Every other path: `Unknown auth provider '<first segment>'`, or `Not found` for the mount
/// path itself.
async fn fallback(State(inner): AppState, line: RequestLine, uri: OriginalUri) -> Response {
    line.answer(unknown_path(&inner, uri.0.path()))
}

fn unknown_path(inner: &Inner, path: &str) -> Handled {
    // The path as seen under the mount path, whatever it is nested in.
    let mount = format!("{}/", inner.mount_path);
    let provider = path
        .rsplit_once(mount.as_str())
        .map_or(path.trim_start_matches('/'), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    if provider.is_empty() {
        return Err(Error::not_found("Not found"));
    }
    Err(unknown_provider(provider))
}
