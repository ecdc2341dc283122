//! Properties of the parsers of client and identity-provider input: the `state` parameter,
//! `Cookie` headers and chunk assembly, the sealed flow and refresh cookies, and the origin
//! globs. Arbitrary input never panics, never hangs and is never accepted as a forgery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue, header};
use proptest::prelude::*;
use stagepass_axum::cookies::{
    CHUNK_SIZE, CookieAttributes, CookieError, CookieWriter, MAX_CHUNKS, RequestCookies,
};
use stagepass_axum::crypto::CookieCipher;
use stagepass_axum::glob_match;
use stagepass_axum::state::OAuthState;
use stagepass_core::SessionSecret;
use time::{Duration, OffsetDateTime};
use url::Url;

const NAME: &str = "p-refresh-token";
const PURPOSE: &str = "refresh-token:p:development";

fn cookie_headers(values: &[String]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(header::COOKIE, value);
        }
    }
    headers
}

fn cipher() -> CookieCipher {
    CookieCipher::from_secret(&SessionSecret::new("property-secret"))
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
    fn state_decoding_never_panics(s in "\\PC{0,200}", hex in "[0-9a-fA-F]{0,200}") {
        let _ = OAuthState::decode(&s);
        let _ = OAuthState::decode(&hex);
    }

    #[test]
    fn state_round_trips(
        nonce in "\\PC{1,30}",
        env in "\\PC{1,20}",
        origin in proptest::option::of("\\PC{0,30}"),
        redirect_url in proptest::option::of("\\PC{0,40}"),
        flow in proptest::option::of("\\PC{0,10}"),
        scope in proptest::option::of("\\PC{0,30}"),
        extra in proptest::collection::vec(("x-[a-z]{1,8}", "\\PC{0,20}"), 0..4),
    ) {
        let state = OAuthState { nonce, env, origin, redirect_url, flow, scope, extra };
        let encoded = state.encode();
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_hexdigit()));
        prop_assert_eq!(OAuthState::decode(&encoded).unwrap(), state);
    }

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

    #[test]
    fn arbitrary_values_never_open(s in "\\PC{0,200}", b in "v1\\.[A-Za-z0-9_-]{0,120}") {
        let cipher = cipher();
        prop_assert!(cipher.open(PURPOSE, &s).is_err());
        prop_assert!(cipher.open(PURPOSE, &b).is_err());
        prop_assert!(cipher.open("flow:p:nonce", &b).is_err());
    }

    #[test]
    fn a_sealed_value_with_any_character_changed_never_opens(
        plaintext in "\\PC{0,60}",
        at in any::<prop::sample::Index>(),
        replacement in "[ -~]",
    ) {
        let cipher = cipher();
        let sealed = cipher.seal(PURPOSE, &plaintext);
        prop_assert_eq!(cipher.open(PURPOSE, &sealed).unwrap(), plaintext);
        let i = at.index(sealed.len());
        let original = &sealed[i..=i];
        prop_assume!(original != replacement);
        let tampered = format!("{}{replacement}{}", &sealed[..i], &sealed[i + 1..]);
        prop_assert!(cipher.open(PURPOSE, &tampered).is_err(), "{} opened", tampered);
        // nor with a character cut or added
        prop_assert!(cipher.open(PURPOSE, &sealed[..sealed.len() - 1]).is_err());
        prop_assert!(cipher.open(PURPOSE, &(sealed.clone() + "A")).is_err());
    }

    #[test]
    fn a_value_sealed_for_one_purpose_never_opens_for_another(
        plaintext in "\\PC{0,40}",
        purpose in "\\PC{0,40}",
        other in "\\PC{0,40}",
    ) {
        prop_assume!(purpose != other);
        let cipher = cipher();
        let sealed = cipher.seal(&purpose, &plaintext);
        prop_assert!(cipher.open(&other, &sealed).is_err());
        let stranger = CookieCipher::from_secret(&SessionSecret::new("another-secret"));
        prop_assert!(stranger.open(&purpose, &sealed).is_err());
    }

    #[test]
    fn globs_never_panic(p in "\\PC{0,60}", t in "\\PC{0,60}", q in "[*?\\[\\]{},\\\\a/!^-]{0,40}") {
        let _ = glob_match(&p, &t);
        let _ = glob_match(&q, &t);
        let _ = glob_match(&q, &q);
    }

    #[test]
    fn globs_match_like_a_reference_matcher(p in "[ab/*?]{0,10}", t in "[ab/]{0,10}") {
        let p: Vec<char> = p.chars().collect();
        let t: Vec<char> = t.chars().collect();
        let expected = reference_match(&p, &t);
        prop_assert_eq!(
            glob_match(&p.iter().collect::<String>(), &t.iter().collect::<String>()),
            expected
        );
    }

    #[test]
    fn a_star_never_crosses_a_slash(x in "\\PC{0,12}", m in "\\PC{0,12}", y in "\\PC{0,12}") {
        let escape = |s: &str| s.chars().flat_map(|c| ['\\', c]).collect::<String>();
        let pattern = format!("{}*{}", escape(&x), escape(&y));
        prop_assert_eq!(glob_match(&pattern, &format!("{x}{m}{y}")), !m.contains('/'));
    }
}

/// Minimatch without classes or braces, by exhaustive search: `*` takes any run without `/`,
/// `?` one character other than `/`.
fn reference_match(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => {
            let reach = t.iter().position(|&c| c == '/').unwrap_or(t.len());
            (0..=reach).any(|k| reference_match(rest, &t[k..]))
        }
        Some(('?', rest)) => t.first().is_some_and(|&c| c != '/') && reference_match(rest, &t[1..]),
        Some((&c, rest)) => t.first() == Some(&c) && reference_match(rest, &t[1..]),
    }
}

#[test]
fn hostile_globs_finish() {
    // many stars against a text that almost matches: no exponential backtracking
    let stars = format!("{}b", "*a".repeat(64));
    assert!(!glob_match(&stars, &"a".repeat(4096)));
    // many brace groups: the expansion stops at its bound instead of visiting 2^40 patterns
    let braces = "{a,b}".repeat(40);
    assert!(glob_match(&braces, &"a".repeat(40)));
    assert!(glob_match(&braces, &format!("{}bbb", "a".repeat(37))));
    let _ = glob_match(&braces, &"b".repeat(40));
    // deeply nested braces
    let nested = format!("{}x{}", "{a,".repeat(200), "}".repeat(200));
    let _ = glob_match(&nested, "ax");
}
