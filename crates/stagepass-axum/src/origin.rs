//! The app origins allowed to start logins and receive their results.

use url::Url;

use crate::glob::glob_match;

/// The app origin (from `app.baseUrl`), the extra origins allowed by
/// `auth.experimentalExtraAllowedOrigins` glob patterns, and origins allowed exactly.
#[derive(Debug, Clone)]
pub struct AllowedOrigins {
    app_origin: String,
    exact: Vec<String>,
    patterns: Vec<String>,
}

impl AllowedOrigins {
    /// Allows the origin of `app_base_url` and every origin matching one of `patterns`
    /// (case-insensitive; `*` does not cross `/`).
    pub fn new(app_base_url: &Url, patterns: Vec<String>) -> Self {
        Self {
            app_origin: app_base_url.origin().ascii_serialization(),
            exact: Vec::new(),
            patterns,
        }
    }

    /// Also allows the origin of `url`, compared as text rather than as a glob: an origin
    /// such as `http://[::1]:7007` holds characters a glob would read as a class.
    #[must_use]
    pub fn with_exact_origin(mut self, url: &Url) -> Self {
        let origin = url.origin();
        if origin.is_tuple() {
            self.exact.push(origin.ascii_serialization());
        }
        self
    }

    /// The app origin, the default target of popup messages.
    pub fn app_origin(&self) -> &str {
        &self.app_origin
    }

    /// Whether `origin` (an already normalised origin) is allowed.
    pub fn is_allowed(&self, origin: &str) -> bool {
        origin == self.app_origin
            || self.exact.iter().any(|o| o == origin)
            || self.patterns.iter().any(|p| glob_match(p, origin))
    }

    /// Normalises a URL or origin to its origin (`scheme://host[:port]`), as `new URL(x).origin`
    /// does. `None` when it does not parse or has no origin.
    pub fn normalize(value: &str) -> Option<String> {
        let url = Url::parse(value).ok()?;
        let origin = url.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }
}
