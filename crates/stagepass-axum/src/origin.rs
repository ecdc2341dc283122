//! The app origins allowed to start logins and receive their results.

use stagepass_core::Error;
use url::Url;

use crate::glob::glob_match;

/// Where an origin that must be allowed comes from: each place words a value without an
/// origin its own way, as Backstage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginSource {
    /// The `origin` parameter of `/start`.
    StartParameter,
    /// The `origin` kept in the state, back at the callback.
    LoginState,
    /// A `redirectUrl`, at `/start` and again at the callback.
    RedirectUrl,
    /// The `Origin` header of a refresh or a logout.
    OriginHeader,
}

impl OriginSource {
    /// The error for a value without an origin.
    fn unparsable(self) -> Error {
        match self {
            Self::StartParameter => Error::input("App origin is invalid, failed to parse"),
            Self::LoginState => Error::not_allowed("App origin is invalid, failed to parse"),
            Self::RedirectUrl => Error::input("Invalid redirectUrl, failed to parse"),
            Self::OriginHeader => Error::not_allowed("Origin is invalid, failed to parse"),
        }
    }
}

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

    /// The origin of `value` (from `source`) when it is allowed: the one check of every origin
    /// a request brings. Fails when the value has no origin, and with `NotAllowedError` when
    /// its origin is not allowed.
    ///
    /// A `redirectUrl` with control characters is refused too: the URL parser drops the tabs
    /// and line breaks that a `Location` header cannot carry, so such a value would be checked
    /// in one form and sent in another.
    pub(crate) fn check(&self, value: &str, source: OriginSource) -> Result<String, Error> {
        if source == OriginSource::RedirectUrl && value.chars().any(char::is_control) {
            return Err(Error::input(
                "Invalid redirectUrl, it contains control characters",
            ));
        }
        let origin = Self::normalize(value).ok_or_else(|| source.unparsable())?;
        if !self.is_allowed(&origin) {
            return Err(Error::not_allowed(format!(
                "Origin '{origin}' is not allowed"
            )));
        }
        Ok(origin)
    }

    /// Where a popup posts its message: the origin the login came from (as kept in its state,
    /// normalised), else the app origin.
    pub(crate) fn popup_target(&self, login_origin: Option<&str>) -> String {
        login_origin
            .and_then(Self::normalize)
            .unwrap_or_else(|| self.app_origin.clone())
    }

    /// Normalises a URL or origin to its origin (`scheme://host[:port]`), as `new URL(x).origin`
    /// does. `None` when it does not parse or has no origin.
    pub fn normalize(value: &str) -> Option<String> {
        let url = Url::parse(value).ok()?;
        let origin = url.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }
}
