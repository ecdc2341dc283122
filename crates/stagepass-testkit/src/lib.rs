//! Test support for stagepass: a browser-like client with a cookie jar that drives an axum
//! router in process, a controllable clock, a scriptable in-process identity provider
//! strategy for the protocol tests and the hostile cases a real identity provider will not
//! produce, a real OpenID provider ([`OidcTestProvider`], the npm package `oidc-provider`
//! run by Node.js on loopback) with an HTTP-driven login, and a GitHub stand-in
//! ([`GithubFixture`], in process on loopback) that answers GitHub's OAuth and user endpoints
//! the documented way, and a real SAML 2.0 IdP ([`SamlTestIdp`], the npm package `samlify` run by
//! Node.js on loopback).

mod client;
mod clock;
pub mod conformance;
pub mod github;
mod node;
mod oidc;
mod saml;
mod strategy;

pub use client::{TestClient, TestRequest, TestResponse};
pub use clock::ManualClock;
pub use github::{GithubFixture, GithubFixtureBuilder, GithubTestUser};
pub use oidc::{
    OidcBrowser, OidcLoginError, OidcStartError, OidcTestProvider, OidcTestProviderBuilder,
};
pub use saml::{SamlPost, SamlStartError, SamlTestIdp, parse_auto_post};
pub use strategy::{TestStrategy, TestStrategyCalls, TestUser};

/// Decodes the two script literals of a popup page: the posted message and the target origin.
pub fn parse_popup(html: &str) -> Option<(serde_json::Value, String)> {
    let mut literals = html.split("decodeURIComponent('").skip(1).map(|rest| {
        rest.split_once("')")
            .map(|(lit, _)| percent_decode(lit))
            .unwrap_or_default()
    });
    let message = serde_json::from_str(&literals.next()?).ok()?;
    let origin = literals.next()?;
    Some((message, origin))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len() + 1
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
