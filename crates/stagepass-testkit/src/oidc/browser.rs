//! Logging in through `oidc-provider`'s development login and consent forms over plain HTTP:
//! what a person does in a browser, without the browser.

use std::fmt;
use std::sync::Arc;

use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use url::Url;

/// The most requests one login may take; a real one takes six or seven.
const MAX_STEPS: usize = 20;

/// Why [`OidcBrowser::login`] did not reach the client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLoginError(String);

impl fmt::Display for OidcLoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "login at the test OpenID provider failed: {}", self.0)
    }
}

impl std::error::Error for OidcLoginError {}

/// A browser stand-in for one [`super::OidcTestProvider`]: an HTTP client with its own cookie
/// jar that follows redirects by hand and fills in the provider's login and consent forms.
///
/// Its cookies (the provider's session) persist between logins, so a second login of the same
/// user goes through without the login form, as in a browser. A login as another user starts
/// from an empty jar.
#[derive(Debug)]
pub struct OidcBrowser {
    /// The issuer: every URL under it belongs to the provider.
    issuer: Url,
    state: tokio::sync::Mutex<State>,
}

/// The client and whom its provider session belongs to.
#[derive(Debug)]
struct State {
    client: Client,
    user: Option<String>,
}

/// The next request of a login.
enum Step {
    Get(Url),
    Post(Url, Vec<(&'static str, String)>),
}

fn error(message: impl Into<String>) -> OidcLoginError {
    OidcLoginError(message.into())
}

/// A client with a fresh cookie jar, redirects off and no proxy (all traffic is loopback).
fn new_client() -> Result<Client, OidcLoginError> {
    Client::builder()
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .redirect(Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| error(format!("could not build the HTTP client: {e}")))
}

impl OidcBrowser {
    /// A browser with an empty cookie jar for the provider at `issuer`.
    pub(super) fn new(issuer: &Url) -> Result<Self, OidcLoginError> {
        Ok(Self {
            issuer: issuer.clone(),
            state: tokio::sync::Mutex::new(State {
                client: new_client()?,
                user: None,
            }),
        })
    }

    /// Forgets every cookie, as a new browser profile would: the next login shows the login
    /// form again.
    pub async fn clear_cookies(&self) -> Result<(), OidcLoginError> {
        let mut state = self.state.lock().await;
        state.client = new_client()?;
        state.user = None;
        Ok(())
    }

    /// Logs `user` in (any password) starting from `authorize_url`, a complete authorization
    /// request to this provider, and returns the URL the provider finally redirects to on the
    /// client's side: the `redirect_uri` with `code`, `state` and `iss` (or with `error` when the
    /// provider refuses the request after the login). It does not request that URL: the caller
    /// hands it to the server under test.
    ///
    /// It GETs `authorize_url` and follows redirects by hand; on the login form it posts
    /// `prompt=login`, `login=<user>`, `password=any`; on the consent form `prompt=consent`. A
    /// provider session of the same user skips the login form and an existing grant skips the
    /// consent form. Any other cookies (another user's session, a failed login's) are dropped
    /// first.
    ///
    /// A request with `prompt=none` (Backstage's OIDC provider sends it by default) shows no
    /// form, so when this browser holds no session of `user` it first signs `user` in and
    /// consents through a throwaway request of the same client, redirect URI and scopes (with
    /// `prompt=login consent`, whose code is never used), as a person already signed in at their
    /// identity provider would be. Then the request itself goes through silently.
    pub async fn login(&self, authorize_url: &Url, user: &str) -> Result<Url, OidcLoginError> {
        let mut state = self.state.lock().await;
        let has_session = state.user.as_deref() == Some(user);
        if !has_session {
            // Whatever the jar holds (another user's session, a half-done login) goes.
            state.client = new_client()?;
        }
        state.user = None;
        let prompt_none = authorize_url
            .query_pairs()
            .any(|(key, value)| key == "prompt" && value.split(' ').any(|p| p == "none"));
        if prompt_none && !has_session {
            let warm_up = warm_up_request(authorize_url);
            let callback = self.run(&state.client, &warm_up, user).await?;
            if callback.query_pairs().any(|(key, _)| key == "error") {
                return Err(error(format!(
                    "signing in before a prompt=none request failed: {callback}"
                )));
            }
        }
        let callback = self.run(&state.client, authorize_url, user).await?;
        if !callback.query_pairs().any(|(key, _)| key == "error") {
            state.user = Some(user.to_owned());
        }
        Ok(callback)
    }

    /// Follows one authorization request to the redirect to the client, filling in forms.
    async fn run(
        &self,
        client: &Client,
        authorize_url: &Url,
        user: &str,
    ) -> Result<Url, OidcLoginError> {
        let redirect_uri = authorize_url
            .query_pairs()
            .find(|(key, _)| key == "redirect_uri")
            .and_then(|(_, value)| Url::parse(&value).ok());
        let mut next = Step::Get(authorize_url.clone());
        let mut trail = Vec::new();
        for _ in 0..MAX_STEPS {
            let (url, request) = match next {
                Step::Get(url) => {
                    trail.push(format!("GET {url}"));
                    let request = client.get(url.clone());
                    (url, request)
                }
                Step::Post(url, form) => {
                    trail.push(format!("POST {url}"));
                    let request = client.post(url.clone()).form(&form);
                    (url, request)
                }
            };
            let response = request
                .send()
                .await
                .map_err(|e| error(format!("{} failed: {e}", trail.join(" -> "))))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| error(format!("{status} without Location from {url}")))?;
                let location = url
                    .join(location)
                    .map_err(|e| error(format!("bad Location {location:?} from {url}: {e}")))?;
                if self.leaves_provider(&location, redirect_uri.as_ref()) {
                    return Ok(location);
                }
                next = Step::Get(location);
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            if status != StatusCode::OK {
                return Err(error(format!(
                    "{status} from {url} ({}): {}",
                    trail.join(" -> "),
                    page_text(&body)
                )));
            }
            let Some(form) = interaction_form(&body) else {
                return Err(error(format!(
                    "{url} answered a page without a login or consent form: {}",
                    page_text(&body)
                )));
            };
            let action = url
                .join(&form.action)
                .map_err(|e| error(format!("bad form action {:?}: {e}", form.action)))?;
            next = match form.prompt.as_str() {
                "login" => Step::Post(
                    action,
                    vec![
                        ("prompt", "login".to_owned()),
                        ("login", user.to_owned()),
                        ("password", "any".to_owned()),
                    ],
                ),
                "consent" => Step::Post(action, vec![("prompt", "consent".to_owned())]),
                other => return Err(error(format!("{url} shows an unknown prompt {other:?}"))),
            };
        }
        Err(error(format!(
            "no redirect to the client after {MAX_STEPS} requests: {}",
            trail.join(" -> ")
        )))
    }

    /// Whether `location` is the client's redirect URI or anywhere outside the provider.
    fn leaves_provider(&self, location: &Url, redirect_uri: Option<&Url>) -> bool {
        if let Some(redirect_uri) = redirect_uri
            && without_query(location) == without_query(redirect_uri)
        {
            return true;
        }
        if location.origin() != self.issuer.origin() {
            return true;
        }
        let base = self.issuer.path().trim_end_matches('/');
        let path = location.path();
        !(path == base || path.starts_with(&format!("{base}/")))
    }
}

/// The request that signs a user in before `authorize_url`, which says `prompt=none`: the same
/// parameters but a fresh `state` and PKCE challenge, no `nonce`, and `prompt=login consent`.
fn warm_up_request(authorize_url: &Url) -> Url {
    let mut url = authorize_url.clone();
    let kept: Vec<(String, String)> = authorize_url
        .query_pairs()
        .filter(|(key, _)| {
            !matches!(
                key.as_ref(),
                "prompt" | "state" | "nonce" | "code_challenge" | "code_challenge_method"
            )
        })
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("prompt", "login consent")
        .append_pair("state", "stagepass-testkit-warm-up")
        // A well-formed S256 challenge; its code is never exchanged.
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    url
}

/// `url` without its query and fragment.
fn without_query(url: &Url) -> Url {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// A form of the provider's interaction pages.
#[derive(Debug, PartialEq, Eq)]
struct InteractionForm {
    /// Where it posts to, unescaped.
    action: String,
    /// The value of its hidden `prompt` input: `login` or `consent`.
    prompt: String,
}

/// Finds the first form with a `prompt` input in `html`.
fn interaction_form(html: &str) -> Option<InteractionForm> {
    // ASCII lowercasing keeps every byte offset, so positions found in `lower` fit `html`.
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(start) = lower[from..].find("<form").map(|i| i + from) {
        let tag_end = lower[start..].find('>').map(|i| i + start)?;
        let end = lower[tag_end..]
            .find("</form")
            .map_or(html.len(), |i| i + tag_end);
        let prompt = tags(&html[tag_end..end], &lower[tag_end..end], "<input")
            .map(attributes)
            .find(|attrs| attr(attrs, "name") == Some("prompt"))
            .and_then(|attrs| attr(&attrs, "value").map(str::to_owned));
        if let Some(prompt) = prompt {
            let attrs = attributes(&html[start..tag_end]);
            let action = attr(&attrs, "action")?.to_owned();
            return Some(InteractionForm { action, prompt });
        }
        from = end.max(start + 1);
    }
    None
}

/// The opening tags named by `open` (such as `<input`) in `html`, without their `>`.
fn tags<'a>(html: &'a str, lower: &'a str, open: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = lower[from..].find(open).map(|i| i + from)?;
        let end = lower[start..].find('>').map_or(html.len(), |i| i + start);
        from = end;
        Some(&html[start..end])
    })
}

/// The attributes of an opening tag (`<name a="1" b='2' c=3 d`), names lowercased, values
/// unescaped.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    let mut rest = tag.trim_start_matches('<');
    // Skip the tag name.
    rest = rest.trim_start_matches(|c: char| !c.is_whitespace() && c != '/' && c != '>');
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() || rest.starts_with('>') {
            return attrs;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (raw, remaining) = match after.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    let close = inner.find(quote).unwrap_or(inner.len());
                    (&inner[..close], inner.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            value = unescape(raw);
            rest = remaining;
        }
        if name.is_empty() {
            // A stray character: skip it rather than loop forever.
            rest = rest.get(1..).unwrap_or("");
            continue;
        }
        attrs.push((name, value));
    }
}

/// The value of attribute `name`.
fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Decodes the character references an HTML escaper writes in attribute values.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|semi| {
            let entity = &rest[1..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The visible text of a page's body, whitespace collapsed and cut short, for error messages.
fn page_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let body = lower.find("<body").map_or(html, |start| &html[start..]);
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = unescape(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    match text.char_indices().nth(600) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::{InteractionForm, attributes, interaction_form, page_text, unescape};

    #[test]
    fn finds_the_login_form() {
        let html = r#"<!DOCTYPE html><html><body><form id="other" action="/x"><input name="q"></form>
            <FORM autocomplete="off" action="http://127.0.0.1:1/interaction/a?b=1&amp;c=2" method="post">
            <input type="hidden" name="prompt" value="login"/>
            <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
            </FORM><a href="/abort">[ Cancel ]</a></body></html>"#;
        assert_eq!(
            interaction_form(html),
            Some(InteractionForm {
                action: "http://127.0.0.1:1/interaction/a?b=1&c=2".to_owned(),
                prompt: "login".to_owned(),
            })
        );
    }

    #[test]
    fn finds_the_consent_form_with_single_quotes() {
        let html = "<form action='/interaction/u' method=post><input type=hidden \
                    value='consent' name='prompt'><button>Continue</button></form>";
        assert_eq!(
            interaction_form(html),
            Some(InteractionForm {
                action: "/interaction/u".to_owned(),
                prompt: "consent".to_owned(),
            })
        );
        assert_eq!(interaction_form("<p>no form</p>"), None);
    }

    #[test]
    fn parses_attributes_and_references() {
        assert_eq!(
            attributes(r#"<input required data-x = "a&quot;b" y=z />"#),
            [
                ("required".to_owned(), String::new()),
                ("data-x".to_owned(), "a\"b".to_owned()),
                ("y".to_owned(), "z".to_owned()),
            ]
        );
        assert_eq!(
            unescape("a&amp;b&#39;c&#x2F;d&bogus e&"),
            "a&b'c/d&bogus e&"
        );
    }

    #[test]
    fn page_text_skips_the_head() {
        let html = "<html><head><style>h1{}</style></head><body><h1>oops!</h1>\
                    <pre><strong>error</strong>: invalid_redirect_uri</pre></body></html>";
        assert_eq!(page_text(html), "oops! error : invalid_redirect_uri");
    }
}
