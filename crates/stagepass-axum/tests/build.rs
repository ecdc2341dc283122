//! What [`AuthBackendBuilder::build`] refuses: a backend without a session secret, unless a
//! random development key is asked for by name, and a token issuer that signs for another URL
//! than the one the backend is served under.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use stagepass_axum::{AuthBackend, AuthBackendBuilder, BuildError};
use stagepass_core::SessionSecret;
use stagepass_identity::{MemoryKeyStore, MemoryUserInfoStore, TokenFactory};
use url::Url;

const APP: &str = "http://localhost:3000";
const BACKEND: &str = "http://localhost:7007";

/// A builder with everything but the session key, its token issuer signing for `issuer`.
fn builder(issuer: &str) -> AuthBackendBuilder {
    let user_info = Arc::new(MemoryUserInfoStore::new());
    let issuer = TokenFactory::builder(issuer)
        .key_store(Arc::new(MemoryKeyStore::new()))
        .user_info_store(user_info.clone())
        .build()
        .unwrap();
    AuthBackend::builder()
        .app_base_url(Url::parse(APP).unwrap())
        .backend_base_url(Url::parse(BACKEND).unwrap())
        .token_issuer(Arc::new(issuer))
        .user_info_store(user_info)
}

#[test]
fn a_missing_session_secret_is_refused() {
    let result = builder("http://localhost:7007/api/auth").build();
    assert!(
        matches!(result, Err(BuildError::MissingSessionSecret)),
        "{result:?}"
    );
    let message = result.unwrap_err().to_string();
    assert!(message.contains("session secret"), "{message}");
    assert!(
        message.contains("dangerously_use_random_session_key"),
        "{message}"
    );
}

#[test]
fn a_session_secret_or_a_random_development_key_is_accepted() {
    builder("http://localhost:7007/api/auth")
        .session_secret(SessionSecret::new("a secret of the deployment"))
        .build()
        .unwrap();
    builder("http://localhost:7007/api/auth")
        .dangerously_use_random_session_key()
        .build()
        .unwrap();
}

#[test]
fn a_token_issuer_signing_for_another_url_is_refused() {
    for (issuer, mount_path) in [
        ("http://localhost:7008/api/auth", "/api/auth"),
        ("http://localhost:7007/api/auth", "/auth"),
        ("http://localhost:7007/api/auth/", "/api/auth"),
    ] {
        let result = builder(issuer)
            .mount_path(mount_path)
            .dangerously_use_random_session_key()
            .build();
        let Err(error @ BuildError::IssuerMismatch { .. }) = result else {
            panic!("{issuer} under {mount_path}: {result:?}");
        };
        let message = error.to_string();
        let served = format!("{BACKEND}{mount_path}");
        assert!(
            message.contains(issuer) && message.contains(&served),
            "{message}"
        );
    }
}

#[test]
fn a_token_issuer_signing_for_the_auth_base_url_is_accepted() {
    let backend = builder("http://localhost:7007/auth")
        .mount_path("/auth/")
        .dangerously_use_random_session_key()
        .build()
        .unwrap();
    assert_eq!(backend.auth_base_url(), "http://localhost:7007/auth");
}
