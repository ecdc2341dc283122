//! Tests of cookie attributes, writing, chunking and dates, and properties of the reader over
//! arbitrary `Cookie` headers: arbitrary input never panics and a chunked value is assembled
//! only from an unambiguous set.

use std::collections::BTreeMap;

use proptest::prelude::*;
use stagepass_core::SessionSecret;

use super::*;
use crate::crypto::CookieCipher;

const NAME: &str = "p-refresh-token";
const PURPOSE: &str = "refresh-token:p:development";

fn cipher() -> CookieCipher {
    CookieCipher::from_secret(&SessionSecret::new("property-secret"))
}

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
    )
    .unwrap();
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
    )
    .unwrap();
    let cleared = w
        .values()
        .iter()
        .filter(|v| {
            let s = v.to_str().unwrap();
            s.starts_with("p-refresh-token-") && s.contains("Max-Age=0") && !s.contains("Domain")
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

fn cookie_headers(values: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(header::COOKIE, value);
        }
    }
    headers
}

/// What `read_chunked` must answer for `pairs`, sent in this order: the names of the chunk
/// set are `NAME` and `NAME-<i>`; any other name is irrelevant.
fn expected_read(pairs: &[(String, String)]) -> Result<Option<String>, ()> {
    let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in pairs {
        seen.entry(name.as_str()).or_default().push(value.as_str());
    }
    let chunk_index = |name: &str| -> Option<usize> {
        let digits = name.strip_prefix(NAME)?.strip_prefix('-')?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        canonical.then(|| digits.parse().unwrap_or(usize::MAX))
    };
    let mut chunks: Vec<(usize, &Vec<&str>)> = seen
        .iter()
        .filter_map(|(name, values)| Some((chunk_index(name)?, values)))
        .collect();
    chunks.sort_by_key(|(i, _)| *i);
    let whole = seen.get(NAME);
    if whole.is_some_and(|v| v.len() > 1) || chunks.iter().any(|(_, v)| v.len() > 1) {
        return Err(());
    }
    if chunks.is_empty() {
        return Ok(whole.map(|v| v[0].to_owned()));
    }
    if whole.is_some() || chunks.len() > MAX_CHUNKS {
        return Err(());
    }
    if chunks.iter().enumerate().any(|(n, (i, _))| n != *i) {
        return Err(());
    }
    Ok(Some(chunks.iter().map(|(_, v)| v[0]).collect()))
}

fn cookie_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(NAME.to_owned()),
        6 => (0usize..11).prop_map(|i| format!("{NAME}-{i}")),
        1 => Just(format!("{NAME}-00")),
        1 => Just(format!("{NAME}-01")),
        1 => Just(format!("{NAME}-x")),
        1 => Just("p-nonce".to_owned()),
        1 => Just(format!("{NAME}-99999999999999999999999")),
    ]
}

fn cookie_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{0,6}"
}

/// Host-only cookies after a response's `Set-Cookie` headers, as a browser keeps them.
fn apply_set_cookies(jar: &mut BTreeMap<String, String>, writer: &CookieWriter) {
    for value in writer.values() {
        let value = value.to_str().unwrap();
        if value.contains("; Domain=") {
            continue;
        }
        let (pair, _) = value.split_once(';').unwrap();
        let (name, v) = pair.split_once('=').unwrap();
        if value.contains("Max-Age=0") {
            jar.remove(name);
        } else {
            jar.insert(name.to_owned(), v.to_owned());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cookie_headers_never_panic(
        headers in proptest::collection::vec("\\PC{0,120}", 0..4),
        raw in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut map = cookie_headers(&headers);
        if let Ok(value) = HeaderValue::from_bytes(&raw) {
            map.append(header::COOKIE, value);
        }
        let cookies = RequestCookies::from_headers(&map);
        let _ = cookies.read_chunked(NAME);
        let _ = cookies.read("p-nonce");
        // nothing in an arbitrary header opens as a sealed cookie
        if let Some(value) = cookies.get_chunked(NAME) {
            prop_assert!(cipher().open(PURPOSE, &value).is_err());
        }
    }

    #[test]
    fn chunks_are_assembled_only_from_an_unambiguous_set(
        pairs in proptest::collection::vec((cookie_name(), cookie_value()), 0..12),
        split in 0usize..3,
    ) {
        // the same pairs in one header or spread over several (as HTTP/2 sends them)
        let joined: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let headers = if split == 0 || joined.is_empty() {
            vec![joined.join("; ")]
        } else {
            let at = split.min(joined.len());
            vec![joined[..at].join("; "), joined[at..].join("; ")]
        };
        let cookies = RequestCookies::from_headers(&cookie_headers(&headers));
        let read = cookies.read_chunked(NAME);
        match expected_read(&pairs) {
            Ok(value) => prop_assert_eq!(read, Ok(value)),
            Err(()) => prop_assert!(read.is_err(), "{:?} read as {:?}", pairs, read),
        }
    }

    #[test]
    fn written_values_read_back_and_leave_no_ambiguous_set(
        len in 0usize..(CHUNK_SIZE * (MAX_CHUNKS + 1)),
        fill in "[A-Za-z0-9_-]",
        prior_chunks in proptest::collection::btree_set(0usize..12, 0..6),
        prior_whole in any::<bool>(),
    ) {
        let value = fill.repeat(len);
        let mut jar = BTreeMap::new();
        if prior_whole {
            jar.insert(NAME.to_owned(), "old".to_owned());
        }
        for i in &prior_chunks {
            jar.insert(format!("{NAME}-{i}"), "old".to_owned());
        }
        let header: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let request = RequestCookies::from_headers(&cookie_headers(&[header.join("; ")]));
        let callback = Url::parse("http://localhost:7007/api/auth/p/handler/frame").unwrap();
        let attrs = CookieAttributes::new("p", &callback, None);
        let mut writer = CookieWriter::new();
        let now = OffsetDateTime::UNIX_EPOCH;
        let written = writer.set_chunked(&attrs, &request, NAME, &value, Duration::days(1), now);
        if len > CHUNK_SIZE * MAX_CHUNKS {
            prop_assert_eq!(written, Err(CookieError::TooLarge));
            prop_assert!(writer.values().is_empty());
            return Ok(());
        }
        prop_assert_eq!(written, Ok(()));
        apply_set_cookies(&mut jar, &writer);
        let header: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let cookies = RequestCookies::from_headers(&cookie_headers(&[header.join("; ")]));
        prop_assert_eq!(cookies.read_chunked(NAME), Ok(Some(value)));
    }
}
