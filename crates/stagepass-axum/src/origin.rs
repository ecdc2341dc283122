//! The app origins allowed to start logins and receive their results.

use url::Url;

use crate::glob::glob_match;

/// The app origin (from `app.baseUrl`) and the extra origins allowed by
/// `auth.experimentalExtraAllowedOrigins` glob patterns.
#[derive(Debug, Clone)]
pub struct AllowedOrigins {
    app_origin: String,
    patterns: Vec<String>,
}

impl AllowedOrigins {
    /// Allows the origin of `app_base_url` and every origin matching one of `patterns`
    /// (case-insensitive; `*` does not cross `/`).
    pub fn new(app_base_url: &Url, patterns: Vec<String>) -> Self {
        Self {
            app_origin: app_base_url.origin().ascii_serialization(),
            patterns,
        }
    }

    /// The app origin, the default target of popup messages.
    pub fn app_origin(&self) -> &str {
        &self.app_origin
    }

    /// Whether `origin` (an already normalised origin) is allowed.
    pub fn is_allowed(&self, origin: &str) -> bool {
        origin == self.app_origin || self.patterns.iter().any(|p| glob_match(p, origin))
    }

    /// Normalises a URL or origin to its origin (`scheme://host[:port]`), as `new URL(x).origin`
    /// does. `None` when it does not parse or has no origin.
    pub fn normalize(value: &str) -> Option<String> {
        let url = Url::parse(value).ok()?;
        let origin = url.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }
}
