//! The protocol's cookies: their names, purposes and lifetimes (in `names`), and the
//! mechanics of reading and writing them: attributes as Backstage computes them, clearing
//! copies for legacy domain cookies, and chunking of long values.
//!
//! A request whose cookies could be read in more than one way is refused rather than read
//! one way: another site on a parent or sibling domain can set cookies that this host then
//! receives ("cookie tossing"), and a browser sends every matching cookie, so which copy of a
//! name comes first is decided by path length and age, not by who set it. The writer never
//! leaves such a set behind: it removes the whole cookie when it writes chunks, the chunks
//! when it writes the whole cookie, and the legacy domain copy of every cookie it writes.

use std::collections::{HashMap, HashSet};

use http::{HeaderMap, HeaderValue, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use url::Url;

mod names;
#[cfg(test)]
mod tests;

pub use names::DEFAULT_SESSION_DURATION;
pub(crate) use names::{CookieNames, LOGIN_COOKIE_LIFETIME, flow_purpose, refresh_token_purpose};

/// Values longer than this are split into `<name>-0`, `<name>-1`, …
pub const CHUNK_SIZE: usize = 4000;

/// The most chunks one value is split into, and the most that are read back: a value longer
/// than `MAX_CHUNKS * CHUNK_SIZE` is refused instead of written.
pub const MAX_CHUNKS: usize = 8;

/// The most removals of stray chunks one response carries; chunks beyond this were not
/// written by this server.
const MAX_CHUNK_REMOVALS: usize = 2 * MAX_CHUNKS;

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

/// Why a cookie could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CookieError {
    /// The request carries more than one cookie of the name (or of one of its chunks).
    #[error("the request carries more than one cookie of the same name")]
    Duplicate,
    /// The request carries the value both whole and in chunks.
    #[error("the request carries a cookie both whole and in chunks")]
    WholeAndChunks,
    /// The chunks present are not exactly `<name>-0` to `<name>-<n>`.
    #[error("the chunks of a cookie are not numbered from 0 without gaps")]
    ChunkGap,
    /// The request carries more than [`MAX_CHUNKS`] chunks of the value.
    #[error("a cookie is split into more than {} chunks", MAX_CHUNKS)]
    TooManyChunks,
    /// The value does not fit in [`MAX_CHUNKS`] chunks of [`CHUNK_SIZE`] characters.
    #[error(
        "the value is too large for {} cookies of {} characters",
        MAX_CHUNKS,
        CHUNK_SIZE
    )]
    TooLarge,
}

/// The cookies of a request, URL-decoded. A name the request carries more than once is
/// remembered as ambiguous, and reading it fails.
#[derive(Debug, Default, Clone)]
pub(crate) struct RequestCookies {
    cookies: HashMap<String, String>,
    duplicated: HashSet<String>,
}

impl RequestCookies {
    /// Parses every `Cookie` header. Malformed pairs are skipped, never an error.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let mut cookies = HashMap::new();
        let mut duplicated = HashSet::new();
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
                if cookies.contains_key(name) {
                    duplicated.insert(name.to_owned());
                } else {
                    cookies.insert(name.to_owned(), decoded);
                }
            }
        }
        Self {
            cookies,
            duplicated,
        }
    }

    /// Whether the request carries at least one cookie named `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    /// The value of the cookie `name`; fails when the request carries more than one.
    pub(crate) fn read(&self, name: &str) -> Result<Option<&str>, CookieError> {
        if self.duplicated.contains(name) {
            return Err(CookieError::Duplicate);
        }
        Ok(self.cookies.get(name).map(String::as_str))
    }

    /// The value of the cookie `name`; `None` when it is absent or ambiguous.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.read(name).ok().flatten()
    }

    /// A possibly chunked value: `<name>-0`, `<name>-1`, … concatenated when chunks are
    /// present, else `<name>`, with the chunk names of Backstage's cookie manager.
    ///
    /// Fails, rather than choosing, when the request carries a name twice, the whole value
    /// and chunks, chunks with a gap, or more than [`MAX_CHUNKS`] chunks. Accepting only the
    /// candidate that decrypts would not help: an attacker who can set cookies for this host
    /// can set a sealed value of their own session, which decrypts as well as the victim's.
    pub(crate) fn read_chunked(&self, name: &str) -> Result<Option<String>, CookieError> {
        let whole = self.read(name)?;
        let indices = self.chunk_indices(name);
        if indices.is_empty() {
            return Ok(whole.map(str::to_owned));
        }
        if whole.is_some() {
            return Err(CookieError::WholeAndChunks);
        }
        if indices.len() > MAX_CHUNKS || indices.iter().any(|&i| i >= MAX_CHUNKS) {
            return Err(CookieError::TooManyChunks);
        }
        // `indices` is sorted and free of repeats, so it is 0..n exactly when its last is n-1.
        if indices.last() != Some(&(indices.len() - 1)) {
            return Err(CookieError::ChunkGap);
        }
        let mut value = String::new();
        for i in indices {
            match self.read(&chunk_name(name, i))? {
                Some(chunk) => value.push_str(chunk),
                None => return Err(CookieError::ChunkGap),
            }
        }
        Ok(Some(value))
    }

    /// A possibly chunked value as [`read_chunked`](Self::read_chunked) reads it; `None` when
    /// it is absent or ambiguous.
    pub(crate) fn get_chunked(&self, name: &str) -> Option<String> {
        self.read_chunked(name).ok().flatten()
    }

    /// The indices of the chunks of `name` the request carries (`<name>-<decimal>` without
    /// leading zeros), sorted; indices too large for `usize` count as `usize::MAX`.
    fn chunk_indices(&self, name: &str) -> Vec<usize> {
        let mut indices: Vec<usize> = self
            .cookies
            .keys()
            .filter_map(|key| {
                let digits = key.strip_prefix(name)?.strip_prefix('-')?;
                let canonical = !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && (digits == "0" || !digits.starts_with('0'));
                canonical.then(|| digits.parse().unwrap_or(usize::MAX))
            })
            .collect();
        indices.sort_unstable();
        indices.dedup();
        indices
    }
}

fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}-{index}")
}

/// Splits `value` into pieces of at most `size` bytes, on character boundaries.
fn split_chunks(value: &str, size: usize) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            // `size` is smaller than one character: take the character whole.
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (chunk, tail) = rest.split_at(end);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SameSite {
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (cross-site, requires `Secure`).
    None,
}

/// The attributes of one provider's cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CookieAttributes {
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
    pub(crate) fn new(provider_id: &str, callback_url: &Url, app_origin: Option<&Url>) -> Self {
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
    pub(crate) fn handler_path(&self) -> String {
        format!("{}/handler", self.path)
    }
}

/// The `Set-Cookie` headers of a response, in order.
#[derive(Debug, Default)]
pub(crate) struct CookieWriter {
    headers: Vec<HeaderValue>,
}

impl CookieWriter {
    /// An empty writer.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Sets a cookie, preceded by a clearing copy on the legacy domain.
    pub(crate) fn set(
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
    /// and the whole cookie is removed; short values remove leftover chunks. Every chunk the
    /// request carries that the value does not overwrite is removed.
    ///
    /// Fails, writing nothing, when the value needs more than [`MAX_CHUNKS`] chunks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn set_chunked(
        &mut self,
        attrs: &CookieAttributes,
        request: &RequestCookies,
        name: &str,
        value: &str,
        max_age: Duration,
        now: OffsetDateTime,
    ) -> Result<(), CookieError> {
        let path = attrs.path.clone();
        if value.len() > CHUNK_SIZE {
            let chunks = split_chunks(value, CHUNK_SIZE);
            if chunks.len() > MAX_CHUNKS {
                return Err(CookieError::TooLarge);
            }
            if request.contains(name) {
                self.remove(attrs, &path, name, now);
            }
            for (i, chunk) in chunks.iter().enumerate() {
                self.set(attrs, &path, &chunk_name(name, i), chunk, max_age, now);
            }
            self.remove_chunks(attrs, request, name, chunks.len(), now);
        } else {
            self.remove_chunks(attrs, request, name, 0, now);
            self.set(attrs, &path, name, value, max_age, now);
        }
        Ok(())
    }

    /// Removes a cookie and its chunks.
    pub(crate) fn remove_chunked(
        &mut self,
        attrs: &CookieAttributes,
        request: &RequestCookies,
        name: &str,
        now: OffsetDateTime,
    ) {
        let path = attrs.path.clone();
        self.remove_chunks(attrs, request, name, 0, now);
        self.remove(attrs, &path, name, now);
    }

    /// Removes the chunks of `name` the request carries from index `from` on.
    fn remove_chunks(
        &mut self,
        attrs: &CookieAttributes,
        request: &RequestCookies,
        name: &str,
        from: usize,
        now: OffsetDateTime,
    ) {
        let path = attrs.path.clone();
        let stray = request
            .chunk_indices(name)
            .into_iter()
            .filter(|&i| i >= from);
        for i in stray.take(MAX_CHUNK_REMOVALS) {
            self.remove(attrs, &path, &chunk_name(name, i), now);
        }
    }

    /// Removes a cookie (an expired copy on the host and on the legacy domain).
    pub(crate) fn remove(
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
            // A configured lifetime may reach past what dates can hold: the cookie then lives
            // until the last date an `Expires` attribute can carry.
            now.checked_add(max_age).unwrap_or_else(latest_cookie_date)
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
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        for value in self.headers {
            headers.append(header::SET_COOKIE, value);
        }
    }

    /// The `Set-Cookie` values written so far.
    #[cfg(test)]
    pub(crate) fn values(&self) -> &[HeaderValue] {
        &self.headers
    }
}

/// The last second an IMF-fixdate can name (its year has four digits).
fn latest_cookie_date() -> OffsetDateTime {
    // 9999-12-31 23:59:59 is a valid date and time, so the fallback is never taken.
    Date::from_calendar_date(9999, Month::December, 31)
        .and_then(|date| date.with_hms(23, 59, 59))
        .map_or(OffsetDateTime::UNIX_EPOCH, PrimitiveDateTime::assume_utc)
}

/// Formats a time as an IMF-fixdate (`Thu, 01 Jan 1970 00:00:00 GMT`). Times before 1970
/// are written as 1970 and times after 9999 as the last second of 9999, so the result is
/// always a valid date.
pub(crate) fn http_date(at: OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let at = at
        .checked_to_offset(UtcOffset::UTC)
        .unwrap_or_else(|| {
            if at.year() < 1970 {
                OffsetDateTime::UNIX_EPOCH
            } else {
                latest_cookie_date()
            }
        })
        .clamp(OffsetDateTime::UNIX_EPOCH, latest_cookie_date());
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
