//! Providers configured in `app-config.yaml`, served by the `stagepass-server` process: an
//! OpenID provider instance under its own id (`provider: oidc`) signing a user in against a
//! real OpenID provider, and provider configuration errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{BIN, ServerProcess, free_port};

use stagepass_testkit::{OidcTestProvider, parse_popup};

/// Starts the server without blocking the test's runtime.
async fn start(config: &Path, port: u16, env: &[(&str, &str)]) -> ServerProcess {
    let config = config.to_owned();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let dir = config.parent().unwrap().to_owned();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ServerProcess::start(&config, &dir, port, &env)
    })
    .await
    .unwrap()
}

fn config(port: u16, providers: &str) -> String {
    format!(
        "app:\n  baseUrl: http://localhost:3000\nbackend:\n  baseUrl: http://127.0.0.1:{port}\n  listen: {{host: 127.0.0.1, port: {port}}}\n  database: {{client: better-sqlite3, connection: ':memory:'}}\nauth:\n  session:\n    secret: provider-test-secret\n  providers:\n{providers}"
    )
}

#[tokio::test]
async fn a_second_oidc_instance_signs_in_against_a_real_idp() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let providers = format!(
        "    corp-sso:\n      provider: oidc\n      development:\n        metadataUrl: {}\n        clientId: {}\n        clientSecret: ${{CORP_SSO_SECRET}}\n        signIn:\n          resolvers:\n            - resolver: emailLocalPartMatchingUserEntityName\n              allowedDomains: [example.com]\n              dangerouslyAllowSignInWithoutUserInCatalog: true\n",
        idp.discovery_url(),
        idp.client_id()
    );
    let path = dir.path().join("app-config.yaml");
    std::fs::write(&path, config(port, &providers)).unwrap();
    // the secret comes from the environment through ${CORP_SSO_SECRET}
    let _server = start(&path, port, &[("CORP_SSO_SECRET", idp.client_secret())]).await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/api/auth/corp-sso");
    let start = browser
        .get(format!(
            "{base}/start?env=development&origin=http://localhost:3000&flow=popup&scope="
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let location = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        location.as_str().starts_with(idp.issuer_str()),
        "{location}"
    );
    let callback = idp.login(&location, "carol").await.unwrap();
    let frame = browser.get(callback.as_str()).send().await.unwrap();
    assert_eq!(frame.status(), 200);
    let (message, origin) = parse_popup(&frame.text().await.unwrap()).unwrap();
    assert_eq!(origin, "http://localhost:3000");
    assert_eq!(
        message["response"]["backstageIdentity"]["identity"]["userEntityRef"], "user:default/carol",
        "{message}"
    );
    let refresh = browser
        .get(format!("{base}/refresh?optional&env=development"))
        .header("x-requested-with", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 200);
    let body: serde_json::Value = refresh.json().await.unwrap();
    assert_eq!(
        body["profile"]["email"],
        OidcTestProvider::email_of("carol")
    );
    let page: serde_json::Value = browser
        .get(format!("http://127.0.0.1:{port}/.stagepass/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["providers"][0]["id"], "corp-sso");
    assert_eq!(page["providers"][0]["kind"], "oauth");
    assert_eq!(page["providers"][0]["type"], "oidc");
}

#[tokio::test]
async fn provider_configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "    oidc:\n      development:\n        metadataUrl: http://127.0.0.1:9/.well-known/openid-configuration\n        clientId: a\n        clientSecret: b\n        clientSecrets: typo\n",
            "auth.providers.oidc.development",
            "clientSecrets",
        ),
        (
            "    google:\n      development:\n        clientId: a\n        clientSecret: b\n        signIn:\n          resolvers:\n            - resolver: usernameMatchingUserEntityName\n",
            "auth.providers.google.development.signIn.resolvers",
            "Sign-in resolver 'usernameMatchingUserEntityName' is not available",
        ),
        (
            "    okta:\n      development:\n        clientId: a\n        clientSecret: b\n",
            "auth.providers.okta.development.audience",
            "",
        ),
        (
            "    gitlab:\n      development:\n        clientId: a\n",
            "auth.providers.gitlab.development.clientSecret",
            "",
        ),
        (
            "    oidc:\n      development:\n        metadataUrl: http://127.0.0.1:9/x\n        clientId: a\n        clientSecret: b\n        scope: openid\n",
            "auth.providers.oidc.development.scope",
            "no longer supports the \"scope\" configuration option",
        ),
    ];
    for (providers, key, detail) in cases {
        let path = dir.path().join("app-config.yaml");
        std::fs::write(&path, config(free_port(), providers)).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .env("LOG_LEVEL", "error")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{providers} was accepted");
        assert!(stderr.contains(key), "{key} not in: {stderr}");
        assert!(stderr.contains(detail), "{detail} not in: {stderr}");
        assert!(stderr.contains("app-config.yaml"), "{stderr}");
    }
}

/// SAML settings the server refuses at start, each naming the key.
#[cfg(feature = "saml")]
#[test]
fn saml_configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = "    saml:\n      entryPoint: https://idp.example.com/sso\n      issuer: sp\n      idpIssuer: idp\n";
    let cases = [
        (
            format!("{base}      cert: not a certificate\n"),
            "auth.providers.saml",
            "not a base64 or PEM",
        ),
        (
            "    saml:\n      issuer: sp\n      metadataFile: /nonexistent/idp-metadata.xml\n"
                .to_owned(),
            "auth.providers.saml.metadataFile",
            "cannot read",
        ),
        (
            "    saml:\n      issuer: sp\n      metadataUrl: http://idp.example.com/metadata\n"
                .to_owned(),
            "auth.providers.saml",
            "must be https",
        ),
        (
            "    saml:\n      issuer: sp\n      idpIssuer: idp\n      cert: x\n".to_owned(),
            "auth.providers.saml.entryPoint",
            "",
        ),
    ];
    let with_cert = |extra: &str| {
        format!(
            "{base}      cert: {}\n{extra}",
            std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../stagepass-testkit/idp/saml/keys/idp-cert.pem"
            ))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
        )
    };
    let more = [
        (
            with_cert("      signatureAlgorithm: sha1\n"),
            "auth.providers.saml",
            "must be `sha256` or `sha512`",
        ),
        (
            with_cert("      digestAlgorithm: sha1\n"),
            "auth.providers.saml",
            "`digestAlgorithm` must be `sha256` or `sha512`",
        ),
        (
            with_cert("      decryptionPvk: not a key\n"),
            "auth.providers.saml",
            "decryptionPvk",
        ),
        (
            with_cert("      wantAssertionSigned: false\n"),
            "auth.providers.saml",
            "wantAssertionSigned",
        ),
    ];
    for (providers, key, detail) in cases.into_iter().chain(more) {
        let path = dir.path().join("app-config.yaml");
        std::fs::write(&path, config(free_port(), &providers)).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .env("LOG_LEVEL", "error")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{providers} was accepted");
        assert!(stderr.contains(key), "{key} not in: {stderr}");
        assert!(stderr.contains(detail), "{detail} not in: {stderr}");
    }
}

#[tokio::test]
async fn catalog_users_sign_in_with_their_groups() {
    let Some(idp) = OidcTestProvider::start_or_skip().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("org")).unwrap();
    std::fs::write(
        dir.path().join("org/people.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: jane\nspec:\n  profile:\n    email: jane@example.com\n  memberOf: [team-a]\n---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  parent: engineering\n  children: []\n---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: engineering\nspec:\n  type: department\n  children: [team-a]\n",
    )
    .unwrap();
    let port = free_port();
    let providers = format!(
        "    oidc:\n      development:\n        metadataUrl: {}\n        clientId: {}\n        clientSecret: {}\n        signIn:\n          resolvers:\n            - resolver: emailMatchingUserEntityProfileEmail\n",
        idp.discovery_url(),
        idp.client_id(),
        idp.client_secret()
    );
    let path = dir.path().join("app-config.yaml");
    std::fs::write(
        &path,
        format!(
            "{}catalog:\n  locations:\n    - type: file\n      target: ./org\n    - type: url\n      target: https://example.com/catalog-info.yaml\n  transitiveOwnership: true\n",
            config(port, &providers)
        ),
    )
    .unwrap();
    let _server = start(&path, port, &[]).await;
    let base = format!("http://127.0.0.1:{port}/api/auth/oidc");

    let sign_in = |user: &'static str| {
        let idp = &idp;
        let base = base.clone();
        async move {
            let browser = reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let start = browser
                .get(format!(
                    "{base}/start?env=development&origin=http://localhost:3000&scope="
                ))
                .send()
                .await
                .unwrap();
            let location = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
            let callback = idp.login(&location, user).await.unwrap();
            let frame = browser.get(callback.as_str()).send().await.unwrap();
            parse_popup(&frame.text().await.unwrap()).unwrap().0
        }
    };

    let message = sign_in("jane").await;
    let identity = &message["response"]["backstageIdentity"];
    assert_eq!(
        identity["identity"],
        serde_json::json!({
            "type": "user",
            "userEntityRef": "user:default/jane",
            "ownershipEntityRefs": ["user:default/jane", "group:default/team-a", "group:default/engineering"]
        }),
        "{message}"
    );
    // the token leaves ownership out by default; /v1/userinfo has it
    let token = identity["token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "user:default/jane");
    assert!(claims.get("ent").is_none());
    let info: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/auth/v1/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["claims"]["ent"],
        serde_json::json!([
            "user:default/jane",
            "group:default/team-a",
            "group:default/engineering"
        ])
    );

    // someone the catalog does not know is refused, and gets no identity
    let message = sign_in("mallory").await;
    assert_eq!(message["error"]["name"], "NotFoundError", "{message}");
    assert!(message.get("response").is_none());
}

/// SAML configured as Backstage does (keys directly under `auth.providers.saml`), signing in
/// against the samlify IdP: the IdP's form is posted to `/handler/frame` like a browser would.
/// The IdP signs only the assertion, so the config says the Response need not be signed.
#[cfg(feature = "saml")]
#[tokio::test]
async fn saml_signs_in_with_backstage_style_config() {
    use stagepass_testkit::SamlTestIdp;

    let Some(idp) = SamlTestIdp::start_or_skip().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cert: String = idp
        .cert()
        .lines()
        .map(|l| format!("\n          {l}"))
        .collect();
    // The display name read from another attribute than the default one.
    let sign_in = "      displayNameAttribute: [urn:example:none, email]\n      signIn:\n        resolvers:\n          - resolver: nameIdMatchingUserEntityName\n            dangerouslyAllowSignInWithoutUserInCatalog: true\n";
    // The IdP given key by key, then read from its metadata URL.
    let explicit = format!(
        "    saml:\n      entryPoint: {}\n      issuer: https://backstage.example.com/saml-sp\n      idpIssuer: {}\n      wantAuthnResponseSigned: false\n      digestAlgorithm: sha256\n      cert: |{cert}\n{sign_in}",
        idp.sso_url(),
        idp.entity_id()
    );
    let from_metadata = format!(
        "    saml:\n      metadataUrl: {}\n      issuer: https://backstage.example.com/saml-sp\n      wantAuthnResponseSigned: false\n{sign_in}",
        idp.metadata_url()
    );
    for providers in [explicit, from_metadata] {
        let port = free_port();
        let path = dir.path().join("app-config.yaml");
        std::fs::write(&path, config(port, &providers)).unwrap();
        let _server = start(&path, port, &[]).await;
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let start = browser
        .get(format!(
            "http://127.0.0.1:{port}/api/auth/saml/start?env=development&origin=http://localhost:3000&flow=popup"
        ))
        .send()
        .await
        .unwrap();
        assert_eq!(start.status(), 302);
        let redirect = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
        assert!(
            redirect.query_pairs().any(|(k, _)| k == "SAMLRequest"),
            "{redirect}"
        );
        let form = idp
            .login(&redirect, "jane@example.com", Some("jane"), "")
            .await
            .unwrap();
        let frame = browser
            .post(form.action.as_str())
            .form(&[
                ("SAMLResponse", form.saml_response.as_str()),
                ("RelayState", form.relay_state.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let (message, _) = parse_popup(&frame.text().await.unwrap()).unwrap();
        assert_eq!(
            message["response"]["backstageIdentity"]["identity"]["userEntityRef"],
            "user:default/jane",
            "{message}"
        );
        assert_eq!(
            message["response"]["profile"]["displayName"], "jane@example.com",
            "{message}"
        );
        // the same response again is refused
        let replay = browser
            .post(form.action.as_str())
            .form(&[
                ("SAMLResponse", form.saml_response.as_str()),
                ("RelayState", form.relay_state.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let (message, _) = parse_popup(&replay.text().await.unwrap()).unwrap();
        assert!(message.get("error").is_some(), "{message}");
    }
}
