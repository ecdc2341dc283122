//! Reading and writing the protocol's cookies: attributes as Backstage computes them,
//! clearing copies for legacy domain cookies, and chunking of long values.

use std::collections::HashMap;

use http::{HeaderMap, HeaderValue, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use time::{Duration, OffsetDateTime};
use url::Url;

/// Values longer than this are split into `<name>-0`, `<name>-1`, …
pub const CHUNK_SIZE: usize = 4000;

/// The characters `encodeURIComponent` leaves alone, so cookie values match Express's.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The cookies of a request, URL-decoded. The first of several cookies with one name wins.
#[derive(Debug, Default, Clone)]
pub struct RequestCookies {
    cookies: HashMap<String, String>,
}

impl RequestCookies {
    /// Parses every `Cookie` header. Malformed pairs are skipped, never an error.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut cookies = HashMap::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                let name = name.trim();
                if name.is_empty() {
                    continue;
                }
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                let decoded = percent_decode_str(value)
                    .decode_utf8()
                    .map_or_else(|_| value.to_owned(), |v| v.into_owned());
                cookies.entry(name.to_owned()).or_insert(decoded);
            }
        }
        Self { cookies }
    }

    /// The value of the cookie `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// A possibly chunked value: `<name>-0`, `<name>-1`, … concatenated when `<name>-0` is
    /// present, else `<name>`.
    pub fn get_chunked(&self, name: &str) -> Option<String> {
        if self.cookies.contains_key(&format!("{name}-0")) {
            let mut value = String::new();
            for i in 0.. {
                match self.cookies.get(&format!("{name}-{i}")) {
                    Some(chunk) => value.push_str(chunk),
                    None => break,
                }
            }
            return Some(value);
        }
        self.get(name).map(str::to_owned)
    }

    /// How many consecutive chunks of `name` the request carries.
    fn chunk_count(&self, name: &str) -> usize {
        (0..)
            .take_while(|i| self.cookies.contains_key(&format!("{name}-{i}")))
            .count()
    }
}

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (cross-site, requires `Secure`).
    None,
}

/// The attributes of one provider's cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttributes {
    /// The provider path, e.g. `/api/auth/github`.
    pub path: String,
    /// Whether cookies are `Secure`.
    pub secure: bool,
    /// The `SameSite` attribute.
    pub same_site: SameSite,
    /// The callback host, used for the clearing copies that evict legacy domain cookies.
    pub legacy_domain: Option<String>,
}

impl CookieAttributes {
    /// Computes the attributes the way Backstage's default cookie configurer does, from the
    /// provider's callback URL and the app origin.
    pub fn new(provider_id: &str, callback_url: &Url, app_origin: Option<&Url>) -> Self {
        let secure = callback_url.scheme() == "https";
        let cross_site = app_origin
            .and_then(Url::host_str)
            .is_some_and(|host| Some(host) != callback_url.host_str());
        let same_site = if cross_site && secure {
            SameSite::None
        } else {
            SameSite::Lax
        };
        let pathname = callback_url.path();
        let suffix = format!("{provider_id}/handler/frame");
        let path = match pathname.strip_suffix("/handler/frame") {
            Some(base) if pathname.ends_with(&suffix) => base.to_owned(),
            _ => format!("{}/{provider_id}", pathname.trim_end_matches('/')),
        };
        Self {
            path,
            secure,
            same_site,
            legacy_domain: callback_url.host_str().map(str::to_owned),
        }
    }

    /// The path of the nonce and flow cookies, which only the callback receives.
    pub fn handler_path(&self) -> String {
        format!("{}/handler", self.path)
    }
}

/// The `Set-Cookie` headers of a response, in order.
#[derive(Debug, Default)]
pub struct CookieWriter {
    headers: Vec<HeaderValue>,
}

impl CookieWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a cookie, preceded by a clearing copy on the legacy domain.
    pub fn set(
        &mut self,
        attrs: &CookieAttributes,
        path: &str,
        name: &str,
        value: &str,
        max_age: Duration,
        now: OffsetDateTime,
    ) {
        self.clear_legacy(attrs, name);
        self.push(attrs, None, path, name, value, max_age, now);
    }

    /// Sets a value that may be longer than [`CHUNK_SIZE`]: long values are split into chunks
    /// and the plain cookie is removed; short values remove leftover chunks.
    #[allow(clippy::too_many_arguments)]
    pub fn set_chunked(
        &mut self,
        attrs: &CookieAttributes,
        request: &RequestCookies,
        name: &str,
        value: &str,
        max_age: Duration,
        now: OffsetDateTime,
    ) {
        let path = attrs.path.clone();
        if value.len() > CHUNK_SIZE {
            let chunks: Vec<&str> = value
                .as_bytes()
                .chunks(CHUNK_SIZE)
                // values are ASCII (encrypted and base64url-encoded), so byte chunks are
                // character chunks
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            if request.get(name).is_some() {
                self.remove(attrs, &path, name, now);
            }
            for (i, chunk) in chunks.iter().enumerate() {
                self.set(attrs, &path, &format!("{name}-{i}"), chunk, max_age, now);
            }
            for i in chunks.len()..request.chunk_count(name) {
                self.remove(attrs, &path, &format!("{name}-{i}"), now);
            }
        } else {
            for i in 0..request.chunk_count(name) {
                self.remove(attrs, &path, &format!("{name}-{i}"), now);
            }
            self.set(attrs, &path, name, value, max_age, now);
        }
    }

    /// Removes a cookie and its chunks.
    pub fn remove_chunked(
        &mut self,
        attrs: &CookieAttributes,
        request: &RequestCookies,
        name: &str,
        now: OffsetDateTime,
    ) {
        let path = attrs.path.clone();
        for i in 0..request.chunk_count(name) {
            self.remove(attrs, &path, &format!("{name}-{i}"), now);
        }
        self.remove(attrs, &path, name, now);
    }

    /// Removes a cookie (an expired copy on the host and on the legacy domain).
    pub fn remove(
        &mut self,
        attrs: &CookieAttributes,
        path: &str,
        name: &str,
        now: OffsetDateTime,
    ) {
        self.clear_legacy(attrs, name);
        self.push(attrs, None, path, name, "", Duration::ZERO, now);
    }

    fn clear_legacy(&mut self, attrs: &CookieAttributes, name: &str) {
        if let Some(domain) = attrs.legacy_domain.clone() {
            let path = attrs.path.clone();
            self.push(
                attrs,
                Some(&domain),
                &path,
                name,
                "",
                Duration::ZERO,
                OffsetDateTime::UNIX_EPOCH,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        attrs: &CookieAttributes,
        domain: Option<&str>,
        path: &str,
        name: &str,
        value: &str,
        max_age: Duration,
        now: OffsetDateTime,
    ) {
        // Attribute order as Express writes them.
        let mut cookie = format!(
            "{name}={}; Max-Age={}",
            utf8_percent_encode(value, URI_COMPONENT),
            max_age.whole_seconds().max(0)
        );
        if let Some(domain) = domain {
            cookie.push_str("; Domain=");
            cookie.push_str(domain);
        }
        cookie.push_str("; Path=");
        cookie.push_str(path);
        let expires = if max_age.is_zero() {
            OffsetDateTime::UNIX_EPOCH
        } else {
            now + max_age
        };
        cookie.push_str("; Expires=");
        cookie.push_str(&http_date(expires));
        cookie.push_str("; HttpOnly");
        if attrs.secure {
            cookie.push_str("; Secure");
        }
        cookie.push_str(match attrs.same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        });
        // Names are provider ids and fixed suffixes, values are percent-encoded and paths and
        // domains come from parsed URLs, so the header is always valid; skip it otherwise.
        if let Ok(value) = HeaderValue::try_from(cookie) {
            self.headers.push(value);
        }
    }

    /// Appends the cookies to a header map.
    pub fn apply(self, headers: &mut HeaderMap) {
        for value in self.headers {
            headers.append(header::SET_COOKIE, value);
        }
    }

    /// The `Set-Cookie` values written so far.
    pub fn values(&self) -> &[HeaderValue] {
        &self.headers
    }
}

/// Formats a time as an IMF-fixdate (`Thu, 01 Jan 1970 00:00:00 GMT`).
pub fn http_date(at: OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(at.weekday().number_days_from_monday())],
        at.day(),
        MONTHS[usize::from(u8::from(at.month()) - 1)],
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn attributes_follow_the_callback_url() {
        let a = CookieAttributes::new(
            "github",
            &url("http://localhost:7007/api/auth/github/handler/frame"),
            Some(&url("http://localhost:3000")),
        );
        assert_eq!(a.path, "/api/auth/github");
        assert_eq!(a.handler_path(), "/api/auth/github/handler");
        assert!(!a.secure);
        assert_eq!(a.same_site, SameSite::Lax);

        let a = CookieAttributes::new(
            "github",
            &url("https://auth.example.com/custom/callback"),
            Some(&url("https://app.example.com")),
        );
        assert_eq!(a.path, "/custom/callback/github");
        assert!(a.secure);
        assert_eq!(a.same_site, SameSite::None);
    }

    #[test]
    fn writes_express_style_cookies() {
        let attrs = CookieAttributes::new(
            "oidc",
            &url("http://localhost:7007/api/auth/oidc/handler/frame"),
            None,
        );
        let mut w = CookieWriter::new();
        let now = OffsetDateTime::from_unix_timestamp(0).unwrap();
        w.set(
            &attrs,
            &attrs.handler_path(),
            "oidc-nonce",
            "a+b/c=",
            Duration::minutes(10),
            now,
        );
        let v: Vec<_> = w
            .values()
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            v[0],
            "oidc-nonce=; Max-Age=0; Domain=localhost; Path=/api/auth/oidc; \
             Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            v[1],
            "oidc-nonce=a%2Bb%2Fc%3D; Max-Age=600; Path=/api/auth/oidc/handler; \
             Expires=Thu, 01 Jan 1970 00:10:00 GMT; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn chunks_long_values_and_reads_them_back() {
        let attrs = CookieAttributes::new(
            "p",
            &url("http://localhost:7007/api/auth/p/handler/frame"),
            None,
        );
        let long = "x".repeat(9000);
        let mut w = CookieWriter::new();
        let now = OffsetDateTime::now_utc();
        w.set_chunked(
            &attrs,
            &RequestCookies::default(),
            "p-refresh-token",
            &long,
            Duration::days(1),
            now,
        );
        let mut jar = Vec::new();
        for v in w.values() {
            let s = v.to_str().unwrap();
            let (pair, _) = s.split_once(';').unwrap();
            if !s.contains("Max-Age=0") {
                jar.push(pair.to_owned());
            }
        }
        assert_eq!(jar.len(), 3);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&jar.join("; ")).unwrap(),
        );
        let cookies = RequestCookies::from_headers(&headers);
        assert_eq!(cookies.get_chunked("p-refresh-token").unwrap(), long);

        // a short value clears the chunks
        let mut w = CookieWriter::new();
        w.set_chunked(
            &attrs,
            &cookies,
            "p-refresh-token",
            "short",
            Duration::days(1),
            now,
        );
        let cleared = w
            .values()
            .iter()
            .filter(|v| {
                let s = v.to_str().unwrap();
                s.starts_with("p-refresh-token-")
                    && s.contains("Max-Age=0")
                    && !s.contains("Domain")
            })
            .count();
        assert_eq!(cleared, 3);
    }

    #[test]
    fn formats_http_dates() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(http_date(t), "Fri, 15 Jan 2027 08:00:00 GMT");
    }

    proptest! {
        #[test]
        fn cookie_reader_never_panics(s in "\\PC*") {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&s) {
                headers.insert(header::COOKIE, v);
            }
            let cookies = RequestCookies::from_headers(&headers);
            let _ = cookies.get_chunked("a");
        }
    }
}
