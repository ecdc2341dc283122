//! An in-process, controllable (and, on demand, hostile) OpenID provider on 127.0.0.1: discovery,
//! JWKS, token, userinfo, revocation and end-session endpoints. Tests change its behaviour
//! through [`Idp::with`] and sign whatever ID tokens they like through [`Idp::set_id_token`].
//!
//! Several test binaries include this module and each uses part of it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use stagepass_core::Params;
use url::Url;

pub(crate) const CLIENT_ID: &str = "stagepass-client";
pub(crate) const CLIENT_SECRET: &str = "client-secret-do-not-leak";

/// A signing key of the test identity provider.
#[derive(Clone)]
pub(crate) struct TestKey {
    pub(crate) kid: String,
    der: Vec<u8>,
    /// The public JWK (with `kid`, `use` and `alg`).
    pub(crate) jwk: Value,
}

impl TestKey {
    fn load(pem: &str, kid: &str) -> Self {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).expect("fixture PEM");
        let encoding = EncodingKey::from_rsa_der(&der);
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .expect("RSA JWK");
        let mut jwk = serde_json::to_value(jwk).expect("JWK JSON");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("RS256");
        Self {
            kid: kid.to_owned(),
            der,
            jwk,
        }
    }

    /// The same key material under another `kid`.
    pub(crate) fn renamed(&self, kid: &str) -> Self {
        let mut key = self.clone();
        key.kid = kid.to_owned();
        key.jwk["kid"] = json!(kid);
        key
    }

    /// Signs `claims` with RS256, with `kid` in the header when given.
    pub(crate) fn sign(&self, claims: &Map<String, Value>, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&self.der))
            .expect("signing")
    }
}

/// The keys the tests use: `a` (published at first), `b` (rotated to), `never` (never published).
#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) a: TestKey,
    pub(crate) b: TestKey,
    pub(crate) never: TestKey,
}

impl Keys {
    fn load() -> Self {
        Self {
            a: TestKey::load(include_str!("../fixtures/rsa-a.pem"), "key-a"),
            b: TestKey::load(include_str!("../fixtures/rsa-b.pem"), "key-b"),
            never: TestKey::load(include_str!("../fixtures/rsa-never.pem"), "key-never"),
        }
    }
}

/// An unsigned JWT (`alg: none`).
pub(crate) fn sign_none(claims: &Map<String, Value>) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.")
}

/// An HS256 JWT with `secret` as the MAC key (the "public key as HMAC secret" attack).
pub(crate) fn sign_hs256(claims: &Map<String, Value>, secret: &[u8], kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Makes an ID token from the default claims.
pub(crate) type IdTokenFn = Arc<dyn Fn(Map<String, Value>, &Keys) -> String + Send + Sync>;

/// A pending code or a live refresh token.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) sub: String,
    pub(crate) nonce: Option<String>,
    pub(crate) code_challenge: String,
    pub(crate) redirect_uri: String,
    pub(crate) scope: String,
}

/// A canned answer of the token endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Canned {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

/// Everything a test can change or inspect.
pub(crate) struct IdpState {
    pub(crate) issuer: String,
    /// The issuer the discovery document names (default: the real one).
    pub(crate) discovery_issuer: Option<String>,
    pub(crate) discovery_status: u16,
    pub(crate) advertise_userinfo: bool,
    pub(crate) advertise_revocation: bool,
    pub(crate) advertise_end_session: bool,
    pub(crate) iss_parameter_supported: bool,
    /// Published keys.
    pub(crate) published: Vec<TestKey>,
    /// The key that signs ID tokens and the `kid` put in their header.
    pub(crate) signing: TestKey,
    pub(crate) signing_kid: Option<String>,
    pub(crate) id_token_fn: Option<IdTokenFn>,
    pub(crate) token_canned: Option<Canned>,
    pub(crate) token_delay: Option<Duration>,
    pub(crate) token_redirect: bool,
    pub(crate) revocation_status: u16,
    pub(crate) userinfo_sub: Option<String>,
    pub(crate) issue_id_token_on_refresh: bool,
    pub(crate) rotate_refresh_tokens: bool,
    /// The sub of the ID token issued on refresh (default: the grant's).
    pub(crate) refresh_sub: Option<String>,
    pub(crate) codes: HashMap<String, Grant>,
    pub(crate) refresh_tokens: HashMap<String, Grant>,
    pub(crate) access_tokens: HashMap<String, String>,
    /// (token, token_type_hint) of each revocation.
    pub(crate) revoked: Vec<(String, Option<String>)>,
    /// The form of each token request.
    pub(crate) token_requests: Vec<HashMap<String, String>>,
    /// How the client authenticated at each token or revocation request.
    pub(crate) client_auth: Vec<&'static str>,
    pub(crate) jwks_fetches: usize,
    pub(crate) discovery_fetches: usize,
    /// The status of the key set response (default 200).
    pub(crate) jwks_status: u16,
    /// The `Cache-Control` of the key set response (default: none).
    pub(crate) jwks_cache_control: Option<&'static str>,
    /// Members set on the discovery document after the defaults.
    pub(crate) discovery_overrides: Map<String, Value>,
    /// The `expires_in` of token responses (default 3600).
    pub(crate) expires_in: Value,
    counter: u64,
}

/// A running identity provider.
#[derive(Clone)]
pub(crate) struct Idp {
    state: Arc<Mutex<IdpState>>,
    pub(crate) keys: Keys,
}

impl Idp {
    /// Starts an identity provider on a free port.
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// Starts an identity provider on `listener`.
    pub(crate) fn serve(listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let keys = Keys::load();
        let state = IdpState {
            issuer: format!("http://{addr}"),
            discovery_issuer: None,
            discovery_status: 200,
            advertise_userinfo: true,
            advertise_revocation: true,
            advertise_end_session: true,
            iss_parameter_supported: false,
            published: vec![keys.a.clone()],
            signing: keys.a.clone(),
            signing_kid: Some(keys.a.kid.clone()),
            id_token_fn: None,
            token_canned: None,
            token_delay: None,
            token_redirect: false,
            revocation_status: 200,
            userinfo_sub: None,
            issue_id_token_on_refresh: true,
            rotate_refresh_tokens: true,
            refresh_sub: None,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            revoked: Vec::new(),
            token_requests: Vec::new(),
            client_auth: Vec::new(),
            jwks_fetches: 0,
            discovery_fetches: 0,
            jwks_status: 200,
            jwks_cache_control: None,
            discovery_overrides: Map::new(),
            expires_in: json!(3600),
            counter: 0,
        };
        let idp = Self {
            state: Arc::new(Mutex::new(state)),
            keys,
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/revoke", post(revoke))
            .route("/session/end", get(|| async { "signed out" }))
            .with_state(idp.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        idp
    }

    pub(crate) fn issuer(&self) -> String {
        self.with(|s| s.issuer.clone())
    }

    /// Reads or changes the state.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut IdpState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Replaces the ID tokens the token endpoint issues.
    pub(crate) fn set_id_token(
        &self,
        f: impl Fn(Map<String, Value>, &Keys) -> String + Send + Sync + 'static,
    ) {
        self.with(|s| s.id_token_fn = Some(Arc::new(f)));
    }

    /// Publishes `key` as well and signs with it from now on (key rotation).
    pub(crate) fn rotate_to(&self, key: TestKey, keep_old: bool) {
        self.with(|s| {
            if !keep_old {
                s.published.clear();
            }
            s.published.push(key.clone());
            s.signing_kid = Some(key.kid.clone());
            s.signing = key;
        });
    }

    /// Plays the user approving the authorization request at `url` as `sub`: returns the
    /// callback parameters (`code`, `state`).
    pub(crate) fn authorize(&self, url: &Url, sub: &str) -> Params {
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query.get("client_id").map(String::as_str), Some(CLIENT_ID));
        assert_eq!(query.get("response_type").map(String::as_str), Some("code"));
        assert_eq!(
            query.get("code_challenge_method").map(String::as_str),
            Some("S256")
        );
        let code = self.with(|s| {
            s.counter += 1;
            let code = format!("code-{}", s.counter);
            s.codes.insert(
                code.clone(),
                Grant {
                    sub: sub.to_owned(),
                    nonce: query.get("nonce").cloned(),
                    code_challenge: query["code_challenge"].clone(),
                    redirect_uri: query["redirect_uri"].clone(),
                    scope: query.get("scope").cloned().unwrap_or_default(),
                },
            );
            code
        });
        let mut params = Params::default();
        params.push("code", code);
        params.push("state", query["state"].clone());
        params
    }
}

async fn discovery(State(idp): State<Idp>) -> Response {
    let (status, body) = idp.with(|s| {
        s.discovery_fetches += 1;
        let base = s.issuer.clone();
        let mut doc = json!({
            "issuer": s.discovery_issuer.clone().unwrap_or_else(|| base.clone()),
            "authorization_endpoint": format!("{base}/auth"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": s.iss_parameter_supported,
        });
        if s.advertise_userinfo {
            doc["userinfo_endpoint"] = json!(format!("{base}/userinfo"));
        }
        if s.advertise_revocation {
            doc["revocation_endpoint"] = json!(format!("{base}/revoke"));
        }
        if s.advertise_end_session {
            doc["end_session_endpoint"] = json!(format!("{base}/session/end"));
        }
        for (name, value) in &s.discovery_overrides {
            doc[name] = value.clone();
        }
        (s.discovery_status, doc)
    });
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

async fn jwks(State(idp): State<Idp>) -> Response {
    let (keys, status, cache_control): (Vec<Value>, _, _) = idp.with(|s| {
        s.jwks_fetches += 1;
        let keys = s.published.iter().map(|k| k.jwk.clone()).collect();
        (keys, s.jwks_status, s.jwks_cache_control)
    });
    let status = StatusCode::from_u16(status).unwrap();
    let mut response = (status, axum::Json(json!({ "keys": keys }))).into_response();
    if let Some(value) = cache_control {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static(value),
        );
    }
    response
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// Checks the client's credentials, by HTTP Basic or in the form.
fn client_auth(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<&'static str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(STANDARD.decode(value).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return (decode(id)? == CLIENT_ID && decode(secret)? == CLIENT_SECRET).then_some("basic");
    }
    (form.get("client_id")?.as_str() == CLIENT_ID
        && form.get("client_secret")?.as_str() == CLIENT_SECRET)
        .then_some("post")
}

fn pkce_s256(verifier: &str) -> String {
    oauth2::PkceCodeChallenge::from_code_verifier_sha256(&oauth2::PkceCodeVerifier::new(
        verifier.to_owned(),
    ))
    .as_str()
    .to_owned()
}

async fn token(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (delay, canned, redirect) = idp.with(|s| {
        s.token_requests.push(form.clone());
        (s.token_delay, s.token_canned.clone(), s.token_redirect)
    });
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if redirect {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, "http://127.0.0.1:9/elsewhere")],
        )
            .into_response();
    }
    if let Some(canned) = canned {
        return (
            StatusCode::from_u16(canned.status).unwrap(),
            [(header::CONTENT_TYPE, canned.content_type)],
            canned.body,
        )
            .into_response();
    }
    let Some(auth) = client_auth(&headers, &form) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    };
    let keys = idp.keys.clone();
    idp.with(|s| {
        s.client_auth.push(auth);
        let field = |name: &str| form.get(name).cloned().unwrap_or_default();
        let (grant, nonce) = match field("grant_type").as_str() {
            "authorization_code" => {
                let Some(grant) = s.codes.remove(&field("code")) else {
                    return oauth_error("invalid_grant", "grant request is invalid");
                };
                if grant.redirect_uri != field("redirect_uri") {
                    return oauth_error("invalid_grant", "redirect_uri mismatch");
                }
                // RFC 7636 section 4.6
                if pkce_s256(&field("code_verifier")) != grant.code_challenge {
                    return oauth_error("invalid_grant", "PKCE verification failed");
                }
                let nonce = grant.nonce.clone();
                (grant, nonce)
            }
            "refresh_token" => {
                let token = field("refresh_token");
                let Some(grant) = s.refresh_tokens.get(&token).cloned() else {
                    return oauth_error("invalid_grant", "grant request is invalid");
                };
                // RFC 6749 section 6: no scope beyond the one granted
                if let Some(scope) = form.get("scope") {
                    let granted: Vec<&str> = grant.scope.split(' ').collect();
                    if scope.split(' ').any(|s| !granted.contains(&s)) {
                        return oauth_error(
                            "invalid_scope",
                            "refresh token missing requested scope",
                        );
                    }
                }
                if s.rotate_refresh_tokens {
                    s.refresh_tokens.remove(&token);
                }
                (grant, None)
            }
            _ => return oauth_error("unsupported_grant_type", "unsupported grant type"),
        };
        let refreshing = field("grant_type") == "refresh_token";
        s.counter += 1;
        let n = s.counter;
        let access_token = format!("at-{n}");
        s.access_tokens
            .insert(access_token.clone(), grant.sub.clone());
        let mut body = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": s.expires_in,
            "scope": grant.scope,
        });
        if !refreshing || s.rotate_refresh_tokens {
            let refresh_token = format!("rt-{n}");
            s.refresh_tokens
                .insert(refresh_token.clone(), grant.clone());
            body["refresh_token"] = json!(refresh_token);
        }
        if !refreshing || s.issue_id_token_on_refresh {
            let sub = if refreshing {
                s.refresh_sub.clone().unwrap_or_else(|| grant.sub.clone())
            } else {
                grant.sub.clone()
            };
            let mut claims = Map::new();
            claims.insert("iss".into(), json!(s.issuer));
            claims.insert("sub".into(), json!(sub));
            claims.insert("aud".into(), json!(CLIENT_ID));
            claims.insert("exp".into(), json!(now() + 600));
            claims.insert("iat".into(), json!(now()));
            claims.insert("auth_time".into(), json!(now()));
            if let Some(nonce) = nonce {
                claims.insert("nonce".into(), json!(nonce));
            }
            let id_token = match &s.id_token_fn {
                Some(f) => f(claims, &keys),
                None => s.signing.sign(&claims, s.signing_kid.as_deref()),
            };
            body["id_token"] = json!(id_token);
        }
        axum::Json(body).into_response()
    })
}

async fn userinfo(State(idp): State<Idp>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    idp.with(|s| {
        let Some(sub) = s.access_tokens.get(&token).cloned() else {
            return (StatusCode::UNAUTHORIZED, "invalid token").into_response();
        };
        let sub = s.userinfo_sub.clone().unwrap_or(sub);
        // like oidc-provider: the e-mail address only comes from userinfo
        axum::Json(json!({
            "sub": sub,
            "email": format!("{sub}@example.com"),
            "email_verified": true,
            "name": format!("User {sub}"),
            "picture": format!("https://pictures.example/{sub}.png"),
        }))
        .into_response()
    })
}

async fn revoke(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(auth) = client_auth(&headers, &form) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    };
    idp.with(|s| {
        s.client_auth.push(auth);
        if s.revocation_status != 200 {
            return StatusCode::from_u16(s.revocation_status)
                .unwrap()
                .into_response();
        }
        let token = form.get("token").cloned().unwrap_or_default();
        s.refresh_tokens.remove(&token);
        s.revoked
            .push((token, form.get("token_type_hint").cloned()));
        StatusCode::OK.into_response()
    })
}
