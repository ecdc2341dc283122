//! The OIDC provider and the identity provider's keys, endpoints and token lifetimes, against
//! the in-process identity provider: key rotation (under a new kid or the same one), cached keys
//! that expire, removed keys, `nbf`, endpoint URL schemes from discovery and hostile
//! `expires_in` values.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod idp;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use stagepass_core::{
    AuthenticateRequest, Authenticated, ClientSecret, Clock, Error, ErrorKind, Params,
    StartRequest, Strategy,
};
use stagepass_generic_oauth::{OidcProvider, OidcProviderBuilder};
use stagepass_testkit::ManualClock;
use url::Url;

use idp::{CLIENT_ID, CLIENT_SECRET, Idp};

const CALLBACK: &str = "http://localhost:7007/api/auth/oidc/handler/frame";

fn builder(idp: &Idp) -> OidcProviderBuilder {
    OidcProvider::builder()
        .issuer(idp.issuer())
        .client_id(CLIENT_ID)
        .client_secret(ClientSecret::new(CLIENT_SECRET))
        .timeout(Duration::from_secs(5))
}

/// start → the user approves at the IdP → authenticate.
async fn login(provider: &OidcProvider, idp: &Idp, sub: &str) -> Result<Authenticated, Error> {
    let callback = Url::parse(CALLBACK).unwrap();
    let scope = provider.scope_policy().union("", None);
    let query = Params::default();
    let started = provider
        .start(StartRequest::new(
            "development",
            &scope,
            "state",
            &callback,
            &query,
        ))
        .await?;
    let params = idp.authorize(&started.url, sub);
    provider
        .authenticate(AuthenticateRequest::new(
            &params,
            &callback,
            started.flow_data.as_ref(),
        ))
        .await
}

#[track_caller]
fn assert_rejected(result: Result<Authenticated, Error>, kind: ErrorKind, needle: &str) {
    let error = match result {
        Ok(_) => panic!("expected an error containing {needle:?}, got Authenticated"),
        Err(error) => error,
    };
    assert_eq!(error.kind(), kind, "{error:?}");
    assert!(
        error.to_string().contains(needle),
        "{error} lacks {needle:?}"
    );
}

fn fetches(idp: &Idp) -> usize {
    idp.with(|s| s.jwks_fetches)
}

#[tokio::test]
async fn a_key_replaced_under_the_same_kid_is_refetched_at_once() {
    let idp = Idp::start().await;
    let provider = builder(&idp).build().unwrap();
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 1);

    // new key material under the old kid: the cached key of that kid does not verify
    let swapped = idp.keys.b.renamed(&idp.keys.a.kid);
    idp.rotate_to(swapped, false);
    let auth = login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(auth.attributes["sub"], "alice");
    assert_eq!(fetches(&idp), 2);
    login(&provider, &idp, "bob").await.unwrap();
    assert_eq!(fetches(&idp), 2);

    // the old key material under that kid verifies nothing any more
    idp.set_id_token(|claims, keys| keys.a.sign(&claims, Some(&keys.a.kid)));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "the signature does not verify",
    );
}

#[tokio::test]
async fn a_rotation_right_after_a_sign_in_needs_no_wait() {
    let idp = Idp::start().await;
    // the default settings, as the OpenID RP certification's rotation test runs them
    let provider = builder(&idp).build().unwrap();
    login(&provider, &idp, "alice").await.unwrap();
    idp.rotate_to(idp.keys.b.clone(), false);
    let auth = login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(auth.attributes["sub"], "alice");
    assert_eq!(fetches(&idp), 2);

    // key a was removed: after that re-fetch, a token signed with it is refused
    idp.set_id_token(|claims, keys| keys.a.sign(&claims, Some(&keys.a.kid)));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "no key of the identity provider verifies it",
    );
}

#[tokio::test]
async fn a_removed_key_is_not_trusted_once_the_keys_expire() {
    let idp = Idp::start().await;
    // published before the provider is built, which discovers in the background
    idp.with(|s| {
        s.jwks_cache_control = Some("public, max-age=120");
        s.published.push(idp.keys.b.clone());
    });
    let clock = Arc::new(ManualClock::starting_now());
    let provider = builder(&idp).clock(clock.clone()).build().unwrap();
    login(&provider, &idp, "alice").await.unwrap();

    // the identity provider removes key a, which still signs (it leaked, say)
    idp.with(|s| s.published = vec![idp.keys.b.clone()]);
    // within the max-age the cached set still holds it
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 1);

    clock.advance(time::Duration::seconds(121));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "no key of the identity provider verifies it",
    );
    // the expiry's fetch, then the one for the unknown key
    assert_eq!(fetches(&idp), 3);
}

#[tokio::test]
async fn cached_keys_expire_after_their_max_age() {
    let idp = Idp::start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let provider = builder(&idp)
        .clock(clock.clone())
        // the IdP's tokens carry real times; the clock moves by days here
        .clock_skew(Duration::from_secs(5 * 24 * 3600))
        .build()
        .unwrap();
    // no Cache-Control: an hour
    login(&provider, &idp, "alice").await.unwrap();
    clock.advance(time::Duration::minutes(59));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 1);
    clock.advance(time::Duration::minutes(2));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 2);

    // a max-age of a year is a day
    idp.with(|s| s.jwks_cache_control = Some("max-age=31536000"));
    clock.advance(time::Duration::hours(2));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 3);
    clock.advance(time::Duration::hours(23));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 3);
    clock.advance(time::Duration::hours(2));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 4);

    // a max-age of 0 is a minute
    idp.with(|s| s.jwks_cache_control = Some("max-age=0"));
    clock.advance(time::Duration::days(2));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 5);
    clock.advance(time::Duration::seconds(30));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 5);
    clock.advance(time::Duration::seconds(31));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 6);
}

#[tokio::test]
async fn expired_keys_serve_for_a_bounded_grace_while_the_key_set_is_down() {
    let idp = Idp::start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let provider = builder(&idp)
        .clock(clock.clone())
        .clock_skew(Duration::from_secs(24 * 3600))
        .build()
        .unwrap();
    login(&provider, &idp, "alice").await.unwrap();
    idp.with(|s| s.jwks_status = 503);

    // expired, the fetch fails: the old keys carry on
    clock.advance(time::Duration::minutes(61));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 2);
    // and the fetch is not tried again for a minute
    clock.advance(time::Duration::seconds(30));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 2);
    clock.advance(time::Duration::seconds(31));
    login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(fetches(&idp), 3);

    // an hour past their expiry they are no longer used
    clock.advance(time::Duration::minutes(60));
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::ServiceUnavailable,
        "fetching the identity provider's keys failed: the key set could not be fetched (HTTP 503)",
    );
    // once the key set answers again, so does sign-in
    idp.with(|s| s.jwks_status = 200);
    clock.advance(time::Duration::minutes(2));
    login(&provider, &idp, "alice").await.unwrap();
}

#[tokio::test]
async fn an_id_token_not_valid_yet_is_refused() {
    let idp = Idp::start().await;
    let provider = builder(&idp).build().unwrap();
    idp.set_id_token(|mut claims, keys| {
        claims.insert("nbf".into(), json!(idp::now() + 3600));
        keys.a.sign(&claims, Some(&keys.a.kid))
    });
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "invalid ID token: the token is not valid yet (nbf)",
    );
    idp.set_id_token(|mut claims, keys| {
        claims.insert("nbf".into(), json!("soon"));
        keys.a.sign(&claims, Some(&keys.a.kid))
    });
    assert_rejected(
        login(&provider, &idp, "alice").await,
        ErrorKind::Authentication,
        "the not-before time (nbf) is not a number",
    );
    // within the clock skew, or in the past: fine
    for offset in [30, 0, -3600] {
        idp.set_id_token(move |mut claims, keys| {
            claims.insert("nbf".into(), json!(idp::now() + offset));
            keys.a.sign(&claims, Some(&keys.a.kid))
        });
        login(&provider, &idp, "alice").await.unwrap();
    }
}

#[tokio::test]
async fn discovered_endpoints_must_be_https_or_loopback() {
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "end_session_endpoint",
    ] {
        for url in [
            "http://idp.example/x",
            "http://10.0.0.1/x",
            "javascript:alert(document.domain)",
            "file:///etc/passwd",
        ] {
            let idp = Idp::start().await;
            idp.with(|s| {
                s.discovery_overrides.insert(field.into(), json!(url));
            });
            let provider = builder(&idp).discover_in_background(false).build().unwrap();
            let error = provider.discover().await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ServiceUnavailable, "{field} {url}");
            assert!(
                error
                    .message()
                    .contains(&format!("the discovery document's {field} (")),
                "{field} {url}: {error}"
            );
            assert!(error.message().contains("is not an https URL"), "{error}");
        }
    }
    // https anywhere, and http on loopback hosts, are fine
    let idp = Idp::start().await;
    idp.with(|s| {
        s.discovery_overrides.insert(
            "end_session_endpoint".into(),
            json!("https://idp.example/logout"),
        );
        s.discovery_overrides.insert(
            "revocation_endpoint".into(),
            json!("http://localhost:9/revoke"),
        );
    });
    let provider = builder(&idp).discover_in_background(false).build().unwrap();
    provider.discover().await.unwrap();
}

#[tokio::test]
async fn hostile_expires_in_values_never_panic() {
    let idp = Idp::start().await;
    let clock = Arc::new(ManualClock::starting_now());
    let provider = builder(&idp).clock(clock.clone()).build().unwrap();
    // so large that no date is that far: no expiry is reported
    for huge in [
        json!(u64::MAX),
        json!(i64::MAX),
        json!(3_153_600_000_000_u64),
    ] {
        idp.with(|s| s.expires_in = huge.clone());
        let auth = login(&provider, &idp, "alice").await.unwrap();
        assert_eq!(auth.session.expires_at, None, "{huge}");
    }
    idp.with(|s| s.expires_in = json!(0));
    let auth = login(&provider, &idp, "alice").await.unwrap();
    assert_eq!(auth.session.expires_at, Some(clock.now()));
    // not a number of seconds: the token response is refused
    for invalid in [
        json!(1e30),
        json!(-1),
        json!(1.5),
        json!("forever"),
        json!([3600]),
    ] {
        idp.with(|s| s.expires_in = invalid.clone());
        assert_rejected(
            login(&provider, &idp, "alice").await,
            ErrorKind::Authentication,
            "invalid token response (at `expires_in`)",
        );
    }
}
