use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A cookie in the jar, keyed by name, path and domain as a browser keeps them.
#[derive(Debug, Clone)]
struct StoredCookie {
    value: String,
    http_only: bool,
}

/// Cookies by name, path and domain (`None` for host-only).
type Jar = BTreeMap<(String, String, Option<String>), StoredCookie>;

/// A browser-like client: sends requests to a router in process, keeps the cookies it is
/// given (honouring `Path` and `Max-Age=0`) and sends them back where they belong.
#[derive(Debug)]
pub struct TestClient {
    router: Router,
    jar: Mutex<Jar>,
}

/// A request being built.
#[derive(Debug)]
pub struct TestRequest<'a> {
    client: &'a TestClient,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    with_cookies: bool,
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl TestClient {
    /// A client of `router`.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    /// A GET request.
    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::GET, path)
    }

    /// A POST request.
    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::POST, path)
    }

    /// A request with any method.
    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            client: self,
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            with_cookies: true,
        }
    }

    /// The value of the host-only cookie `name` (any path), if the jar holds it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jar.iter()
            .find(|((n, _, domain), _)| n == name && domain.is_none())
            .map(|(_, c)| c.value.clone())
    }

    /// Whether every cookie in the jar is `HttpOnly`.
    pub fn all_cookies_http_only(&self) -> bool {
        let jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jar.values().all(|c| c.http_only)
    }

    /// Sets a cookie by hand (a forged or replayed one).
    pub fn set_cookie(&self, name: &str, path: &str, value: &str) {
        let mut jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jar.insert(
            (name.to_owned(), path.to_owned(), None),
            StoredCookie {
                value: value.to_owned(),
                http_only: true,
            },
        );
    }

    /// Empties the jar.
    pub fn clear_cookies(&self) {
        self.jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn cookie_header(&self, path: &str) -> Option<String> {
        let jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pairs: Vec<String> = jar
            .iter()
            .filter(|((_, cookie_path, _), _)| path_matches(path, cookie_path))
            .map(|((name, _, _), c)| format!("{name}={}", c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store(&self, headers: &HeaderMap, request_path: &str) {
        let mut jar = self
            .jar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for value in headers.get_all(header::SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let mut parts = value.split(';');
            let Some((name, val)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut path = default_path(request_path);
            let mut domain = None;
            let mut delete = false;
            let mut http_only = false;
            for attr in parts {
                let attr = attr.trim();
                let (key, v) = attr.split_once('=').unwrap_or((attr, ""));
                match key.to_ascii_lowercase().as_str() {
                    "path" => path = v.to_owned(),
                    "domain" => domain = Some(v.to_ascii_lowercase()),
                    "max-age" => delete = v.parse::<i64>().is_ok_and(|n| n <= 0),
                    "httponly" => http_only = true,
                    _ => {}
                }
            }
            let key = (name.trim().to_owned(), path, domain);
            if delete {
                jar.remove(&key);
            } else {
                jar.insert(
                    key,
                    StoredCookie {
                        value: val.trim().to_owned(),
                        http_only,
                    },
                );
            }
        }
    }
}

fn default_path(request_path: &str) -> String {
    let path = request_path.split('?').next().unwrap_or("/");
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => path[..i].to_owned(),
    }
}

fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    let path = request_path.split('?').next().unwrap_or("/");
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

impl TestRequest<'_> {
    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            self.headers.append(name, value);
        }
        self
    }

    /// Adds `X-Requested-With: XMLHttpRequest`, as the Backstage frontend does.
    #[must_use]
    pub fn xhr(self) -> Self {
        self.header("x-requested-with", "XMLHttpRequest")
    }

    /// Sends a form body.
    #[must_use]
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        let mut form = form_serializer();
        for (k, v) in pairs {
            form.append_pair(k, v);
        }
        self.body = form.finish().into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    /// Sends a raw body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends no cookies with this request.
    #[must_use]
    pub fn without_cookies(mut self) -> Self {
        self.with_cookies = false;
        self
    }

    /// Sends the request and stores the cookies of the response.
    pub async fn send(self) -> TestResponse {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str());
        if let Some(headers) = builder.headers_mut() {
            headers.extend(self.headers.clone());
            if self.with_cookies
                && let Some(cookies) = self.client.cookie_header(&self.path)
                && let Ok(value) = HeaderValue::try_from(cookies)
            {
                headers.insert(header::COOKIE, value);
            }
        }
        let request = builder
            .body(Body::from(self.body))
            .unwrap_or_else(|e| panic!("invalid test request {}: {e}", self.path));
        let response = self
            .client
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        self.client.store(&parts.headers, &self.path);
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

fn form_serializer() -> url::form_urlencoded::Serializer<'static, String> {
    url::form_urlencoded::Serializer::new(String::new())
}

impl TestResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All `Set-Cookie` values.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The `Set-Cookie` value that sets `name` (not a clearing copy).
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")) && !c.contains("Max-Age=0"))
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<url::Url> {
        let location = self.header("location")?;
        url::Url::parse(location)
            .or_else(|_| url::Url::parse("http://relative.invalid")?.join(location))
            .ok()
    }

    /// The popup page's message and target origin.
    pub fn popup(&self) -> Option<(serde_json::Value, String)> {
        crate::parse_popup(&self.text())
    }
}
