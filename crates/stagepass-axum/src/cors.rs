//! The CORS layer for an auth backend whose frontend is served from another origin, with the
//! settings that would let any website read tokens refused.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::glob::glob_match;

/// Origins that no frontend's origin pattern should match: a pattern that matches one of them
/// matches (nearly) every origin. `null` is the origin of sandboxed frames and `data:` pages,
/// which any website can create.
const PROBE_ORIGINS: &[&str] = &[
    "https://stagepass-cors-probe.invalid",
    "http://stagepass-cors-probe.invalid",
    "http://stagepass-cors-probe.invalid:1",
    "null",
];

/// Why [`CorsOptions::layer`] refused its options: each would let every website call the
/// backend with the user's cookies and read the tokens it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorsError {
    /// Credentials were allowed without a list of origins.
    #[error(
        "credentials need a list of allowed origins: without one, every website could read \
         tokens with the user's cookies"
    )]
    CredentialsWithoutOrigins,
    /// Credentials were allowed with an origin pattern that matches every origin.
    #[error(
        "origin pattern {0:?} matches any origin, and with credentials every website could read \
         tokens with the user's cookies"
    )]
    OriginMatchesEverything(String),
}

/// The CORS settings of an auth backend (Backstage's `backend.cors`), answered as the `cors`
/// package Backstage uses answers, except that no setting lets an arbitrary website read
/// responses with the user's cookies:
///
/// - credentials need [`origins`](Self::origins): reflecting whatever `Origin` a request
///   carries (what the `cors` package does without a list) would let any website call
///   `/refresh` with the user's cookies and read the tokens;
/// - credentials with a pattern that matches every origin (`*`, `https://*`, `*//*`, `null`)
///   amount to the same and are refused too;
/// - without credentials, a `*` pattern (or no list) answers `Access-Control-Allow-Origin: *`.
///
/// Patterns are globs as [`glob_match`] reads them (`https://*.example.com`); the `null`
/// origin is never allowed by a pattern.
///
/// ```
/// use stagepass_axum::CorsOptions;
///
/// let cors = CorsOptions::new()
///     .origins(["http://localhost:3000", "https://*.example.com"])
///     .credentials(true)
///     .layer()?;
/// let app: axum::Router = axum::Router::new().layer(cors);
/// # let _ = app;
/// # Ok::<(), stagepass_axum::CorsError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CorsOptions {
    origins: Option<Vec<String>>,
    methods: Option<Vec<Method>>,
    allowed_headers: Option<Vec<HeaderName>>,
    exposed_headers: Vec<HeaderName>,
    credentials: bool,
    max_age: Option<Duration>,
}

impl CorsOptions {
    /// No origin list, no credentials, the default methods and headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The allowed origins, exact or as glob patterns (`origin`); `*` alone means any origin.
    #[must_use]
    pub fn origins<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins = Some(patterns.into_iter().map(Into::into).collect());
        self
    }

    /// The allowed methods (`methods`); by default `GET`, `HEAD`, `PUT`, `PATCH`, `POST` and
    /// `DELETE`.
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = Some(methods.into_iter().collect());
        self
    }

    /// The request headers a preflight may ask for (`allowedHeaders`); by default
    /// `X-Requested-With`, `Content-Type` and `Authorization`.
    #[must_use]
    pub fn allowed_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.allowed_headers = Some(headers.into_iter().collect());
        self
    }

    /// The response headers the browser shows the page (`exposedHeaders`); none by default.
    #[must_use]
    pub fn exposed_headers(mut self, headers: impl IntoIterator<Item = HeaderName>) -> Self {
        self.exposed_headers = headers.into_iter().collect();
        self
    }

    /// Sends `Access-Control-Allow-Credentials: true` (`credentials`): the frontend's requests
    /// carry the user's cookies. Off by default.
    #[must_use]
    pub fn credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// How long browsers may cache a preflight's answer (`maxAge`); not sent by default.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The CORS layer, or why these options are refused.
    pub fn layer(&self) -> Result<CorsLayer, CorsError> {
        let mut layer = CorsLayer::new().allow_origin(self.allow_origin()?);
        layer = layer.allow_methods(self.methods.clone().unwrap_or_else(|| {
            vec![
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::PATCH,
                Method::POST,
                Method::DELETE,
            ]
        }));
        layer = layer.allow_headers(self.allowed_headers.clone().unwrap_or_else(|| {
            vec![
                HeaderName::from_static("x-requested-with"),
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
            ]
        }));
        if !self.exposed_headers.is_empty() {
            layer = layer.expose_headers(self.exposed_headers.clone());
        }
        if self.credentials {
            layer = layer.allow_credentials(true);
        }
        if let Some(max_age) = self.max_age {
            layer = layer.max_age(max_age);
        }
        Ok(layer)
    }

    /// Which origins are answered, after refusing the settings that allow every website.
    fn allow_origin(&self) -> Result<AllowOrigin, CorsError> {
        match &self.origins {
            Some(origins) if self.credentials => {
                if let Some(pattern) = origins.iter().find(|p| matches_everything(p)) {
                    return Err(CorsError::OriginMatchesEverything(pattern.clone()));
                }
                Ok(origin_patterns(origins.clone()))
            }
            Some(origins) if origins.iter().any(|p| p == "*") => Ok(Any.into()),
            Some(origins) => Ok(origin_patterns(origins.clone())),
            None if self.credentials => Err(CorsError::CredentialsWithoutOrigins),
            None => Ok(Any.into()),
        }
    }
}

/// Whether `pattern` is `*` or matches one of the origins no frontend has.
fn matches_everything(pattern: &str) -> bool {
    pattern == "*"
        || PROBE_ORIGINS
            .iter()
            .any(|probe| pattern == *probe || glob_match(pattern, probe))
}

/// Allows the origins that equal or match (as globs) one of `patterns`, never `null`.
fn origin_patterns(patterns: Vec<String>) -> AllowOrigin {
    AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        origin
            .to_str()
            .is_ok_and(|o| o != "null" && patterns.iter().any(|p| p == o || glob_match(p, o)))
    })
}

#[cfg(test)]
mod tests;
