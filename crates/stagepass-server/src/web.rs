//! The server's own routes: the sign-in page, health checks and metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use stagepass::http::AuthBackend;
use stagepass::identity::TokenFactory;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// What the sign-in page needs to know.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageConfig {
    pub(crate) auth_base_url: String,
    pub(crate) environment: String,
    pub(crate) providers: Vec<PageProvider>,
}

/// A provider as the sign-in page shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PageProvider {
    pub(crate) id: String,
    pub(crate) title: String,
    /// `oauth` (popup sign-in) or `proxy` (sign-in through refresh).
    pub(crate) kind: &'static str,
    /// The provider type (`guest`, `oidc`, `github`, …), which picks the icon.
    #[serde(rename = "type")]
    pub(crate) provider_type: String,
}

/// Requests served, by matched route and status.
#[derive(Debug, Default)]
pub(crate) struct RequestMetrics {
    counts: Mutex<BTreeMap<(String, u16), u64>>,
}

#[derive(Clone)]
struct WebState {
    page: Arc<str>,
    csp: HeaderValue,
    backend: AuthBackend,
    issuer: Arc<TokenFactory>,
    requests: Arc<RequestMetrics>,
}

/// The routes of the page, health and metrics, plus the auth backend under `/api/auth`, with
/// request counting around all of it.
pub(crate) fn router(
    backend: &AuthBackend,
    issuer: Arc<TokenFactory>,
    page: &PageConfig,
) -> Router {
    let requests = Arc::new(RequestMetrics::default());
    let state = WebState {
        page: serde_json::to_string(page).unwrap_or_default().into(),
        csp: content_security_policy(&page.auth_base_url),
        backend: backend.clone(),
        issuer,
        requests: requests.clone(),
    };
    Router::new()
        .route("/", get(index))
        .route("/static/app.js", get(app_js))
        .route("/static/style.css", get(style_css))
        .route("/.stagepass/config.json", get(page_config))
        .route("/.backstage/health/v1/readiness", get(health))
        .route("/.backstage/health/v1/liveness", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
        .nest(
            "/api/auth",
            backend
                .router()
                .layer(axum::middleware::from_fn(start_errors_back_to_the_page)),
        )
        .layer(axum::middleware::from_fn_with_state(
            requests,
            count_requests,
        ))
}

/// The page's Content-Security-Policy: its own scripts and styles only, no framing, and
/// pictures of the signed-in user from `https:` (and `data:`). From `http:` too only while the
/// server itself is on plain http at a loopback address: a developer's machine, where a local
/// identity provider often serves its pictures over http. A page served over https never loads
/// them (browsers block or upgrade mixed content), and a plain-http server elsewhere is no
/// reason to let the page fetch anything over the network in the clear.
fn content_security_policy(auth_base_url: &str) -> HeaderValue {
    let local_http = url::Url::parse(auth_base_url).is_ok_and(|url| {
        url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Domain(domain)) => domain == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            }
    });
    let img_src = if local_http {
        "'self' https: http: data:"
    } else {
        "'self' https: data:"
    };
    HeaderValue::try_from(format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src {img_src}; frame-ancestors 'none'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"))
}

fn asset(csp: &HeaderValue, content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn index(State(state): State<WebState>) -> Response {
    asset(&state.csp, "text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js(State(state): State<WebState>) -> Response {
    asset(&state.csp, "text/javascript; charset=utf-8", APP_JS)
}

async fn style_css(State(state): State<WebState>) -> Response {
    asset(&state.csp, "text/css; charset=utf-8", STYLE_CSS)
}

async fn page_config(State(state): State<WebState>) -> Response {
    let mut response = state.page.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

async fn health() -> Response {
    let mut response = r#"{"status":"ok"}"#.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

async fn metrics(State(state): State<WebState>) -> Response {
    let mut out = String::new();
    out.push_str(
        "# HELP stagepass_http_requests_total HTTP requests by route and status.\n\
         # TYPE stagepass_http_requests_total counter\n",
    );
    {
        let counts = state
            .requests
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((route, status), count) in counts.iter() {
            out.push_str(&format!(
                "stagepass_http_requests_total{{route=\"{}\",status=\"{status}\"}} {count}\n",
                stagepass::http::AuthMetrics::escape_label(route)
            ));
        }
    }
    state.backend.metrics().render(&mut out);
    out.push_str(&format!(
        "# HELP stagepass_signing_keys_created_total Signing keys created: the first and each rotation.\n\
         # TYPE stagepass_signing_keys_created_total counter\n\
         stagepass_signing_keys_created_total {}\n",
        state.issuer.keys_created()
    ));
    let mut response = (StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The longest error body read back from `/start` (Backstage's error JSON is far shorter).
const START_ERROR_BODY_LIMIT: usize = 16 * 1024;

/// A browser that leaves a page for `/start?flow=redirect` and meets an error there would be
/// left looking at the error's JSON. When that page is on this server's own origin (the
/// `redirectUrl` has the host the request came to, as for the sign-in page at `/`), send the
/// browser back to it with `?error=<message>` instead, as the callback does with its errors,
/// so that the page can say what went wrong. Requests that are not navigations (`fetch`) and
/// pages elsewhere, such as a Backstage frontend on its own origin, get the JSON as before;
/// the target is this server's own origin, so this is no open redirect.
async fn start_errors_back_to_the_page(request: Request, next: Next) -> Response {
    let back_to = start_error_target(&request);
    let response = next.run(request).await;
    let Some(mut target) = back_to else {
        return response;
    };
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, START_ERROR_BODY_LIMIT).await else {
        return (parts.status, parts.headers).into_response();
    };
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|body| body["error"]["message"].as_str().map(str::to_owned));
    let Some(message) = message else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    target.query_pairs_mut().append_pair("error", &message);
    match HeaderValue::try_from(target.as_str()) {
        Ok(location) => {
            let mut redirect = StatusCode::FOUND.into_response();
            redirect.headers_mut().insert(header::LOCATION, location);
            redirect
        }
        Err(_) => Response::from_parts(parts, axum::body::Body::from(bytes)),
    }
}

/// For a browser navigation to `/<provider>/start?flow=redirect&redirectUrl=…` whose
/// `redirectUrl` is on the host the request was sent to: that URL, without `error`.
fn start_error_target(request: &Request) -> Option<url::Url> {
    let segments: Vec<&str> = request.uri().path().split('/').collect();
    if request.method() != http::Method::GET || !matches!(segments[..], ["", _, "start"]) {
        return None;
    }
    let headers = request.headers();
    let navigation = headers
        .get("sec-fetch-mode")
        .is_some_and(|mode| mode == "navigate")
        || headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    if !navigation {
        return None;
    }
    let query = request.uri().query()?;
    let mut flow = None;
    let mut redirect_url = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "flow" => flow = Some(value.into_owned()),
            "redirectUrl" => redirect_url = Some(value.into_owned()),
            _ => {}
        }
    }
    if flow.as_deref() != Some("redirect") {
        return None;
    }
    let mut target = url::Url::parse(&redirect_url?).ok()?;
    if !matches!(target.scheme(), "http" | "https") {
        return None;
    }
    let authority = match (target.host_str(), target.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return None,
    };
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if !host.eq_ignore_ascii_case(&authority) {
        return None;
    }
    let kept: Vec<(String, String)> = target
        .query_pairs()
        .filter(|(key, _)| key != "error")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    target.set_query(None);
    if !kept.is_empty() {
        target.query_pairs_mut().extend_pairs(kept);
    }
    target.set_fragment(None);
    Some(target)
}

/// Counts each request under its route pattern (never the raw path, which would let clients
/// create unbounded label values).
async fn count_requests(
    State(requests): State<Arc<RequestMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    // The route pattern only: query strings carry authorization codes and state.
    tracing::debug!(%method, %route, status, elapsed_us = started.elapsed().as_micros() as u64, "request");
    let mut counts = requests
        .counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *counts.entry((route, status)).or_insert(0) += 1;
    response
}

#[cfg(test)]
mod tests {
    use super::content_security_policy;

    #[test]
    fn pictures_over_http_only_for_a_local_http_server() {
        let img_src = |base: &str| {
            let csp = content_security_policy(base);
            let csp = csp.to_str().unwrap().to_owned();
            csp.split("; ")
                .find(|d| d.starts_with("img-src"))
                .unwrap()
                .to_owned()
        };
        for local in [
            "http://localhost:7007/api/auth",
            "http://127.0.0.1:7007/api/auth",
            "http://[::1]:7007/api/auth",
        ] {
            assert_eq!(
                img_src(local),
                "img-src 'self' https: http: data:",
                "{local}"
            );
        }
        for other in [
            "https://localhost:7007/api/auth",
            "https://backstage.example.com/api/auth",
            "http://backstage.example.com/api/auth",
            "http://10.0.0.5:7007/api/auth",
        ] {
            assert_eq!(img_src(other), "img-src 'self' https: data:", "{other}");
        }
    }
}
