//! The popup page ("web message response") that hands the result of a login to the app.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderValue, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::digest;
use serde::Serialize;
use stagepass_core::{AuthResponse, Error};

/// `encodeURIComponent`, plus `'` which it leaves alone, so the values can sit in single-quoted
/// script literals.
const SCRIPT_LITERAL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'(')
    .remove(b')');

/// The message posted to the app: `{type: "authorization_response", response | error}`.
#[derive(Debug, Serialize)]
pub struct WebMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a AuthResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorMessage>,
}

impl<'a> WebMessage<'a> {
    /// A successful login.
    pub fn response(response: &'a AuthResponse) -> Self {
        Self {
            kind: "authorization_response",
            response: Some(response),
            error: None,
        }
    }

    /// A failed login.
    pub fn error(error: &Error) -> Self {
        Self {
            kind: "authorization_response",
            response: None,
            error: Some(error.into()),
        }
    }
}

/// The `error` member of a failed login's message.
#[derive(Debug, Serialize)]
pub struct ErrorMessage {
    /// The Backstage error name.
    pub name: String,
    /// The message, with its causes.
    pub message: String,
}

impl From<&Error> for ErrorMessage {
    fn from(err: &Error) -> Self {
        Self {
            name: err.name().to_owned(),
            message: err.to_string(),
        }
    }
}

/// A rendered popup page: the script, its CSP hash and the HTML around it.
#[derive(Debug, Clone)]
pub struct PopupPage {
    /// The whole HTML document.
    pub html: String,
    /// The `Content-Security-Policy` value allowing exactly this script.
    pub csp: String,
}

impl PopupPage {
    /// Renders the page that posts `message` to the window that opened it, at `target_origin`.
    pub fn render(message: &WebMessage<'_>, target_origin: &str) -> Self {
        // Serialising these types cannot fail: they are strings, numbers and maps.
        let json = serde_json::to_string(message).unwrap_or_default();
        let auth_response = utf8_percent_encode(&json, SCRIPT_LITERAL);
        let origin = utf8_percent_encode(target_origin, SCRIPT_LITERAL);
        let script = format!(
            "\nvar authResponse = decodeURIComponent('{auth_response}');\n\
             var origin = decodeURIComponent('{origin}');\n\
             var originInfo = {{'type': 'config_info', 'targetOrigin': origin}};\n\
             (window.opener || window.parent).postMessage(originInfo, '*');\n\
             (window.opener || window.parent).postMessage(JSON.parse(authResponse), origin);\n\
             setTimeout(() => {{\n  window.close();\n}}, 100); // same as the interval of the core-app-api lib/loginPopup.ts (to address race conditions)\n"
        );
        let hash = digest::digest(&digest::SHA256, script.as_bytes());
        let csp = format!("script-src 'sha256-{}'", STANDARD.encode(hash.as_ref()));
        let html = format!("<html><body><script>{script}</script></body></html>");
        Self { html, csp }
    }

    /// The page as an HTTP response (200, `text/html`, framing restricted, script pinned by
    /// hash).
    pub fn into_response(self) -> axum::response::Response {
        let mut response = axum::response::Response::new(axum::body::Body::from(self.html));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("sameorigin"),
        );
        if let Ok(csp) = HeaderValue::try_from(self.csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use stagepass_core::ProfileInfo;

    use super::*;

    fn literals(html: &str) -> Vec<String> {
        html.split("decodeURIComponent('")
            .skip(1)
            .map(|rest| rest.split_once("')").unwrap().0.to_owned())
            .collect()
    }

    fn decode(s: &str) -> String {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .unwrap()
            .into_owned()
    }

    #[test]
    fn embeds_message_and_origin_and_pins_the_script() {
        let response = AuthResponse {
            profile: ProfileInfo {
                display_name: Some("O'Brien </script>".into()),
                ..Default::default()
            },
            provider_info: None,
            backstage_identity: None,
        };
        let page = PopupPage::render(&WebMessage::response(&response), "http://localhost:3000");
        assert_eq!(
            page.html.matches("</script>").count(),
            1,
            "the payload must not close the script"
        );
        let lits = literals(&page.html);
        assert_eq!(lits.len(), 2);
        assert!(!lits[0].contains('\''));
        let msg: serde_json::Value = serde_json::from_str(&decode(&lits[0])).unwrap();
        assert_eq!(msg["type"], "authorization_response");
        assert_eq!(
            msg["response"]["profile"]["displayName"],
            "O'Brien </script>"
        );
        assert_eq!(decode(&lits[1]), "http://localhost:3000");

        let script = page
            .html
            .strip_prefix("<html><body><script>")
            .and_then(|s| s.strip_suffix("</script></body></html>"))
            .unwrap();
        let hash = digest::digest(&digest::SHA256, script.as_bytes());
        assert_eq!(
            page.csp,
            format!("script-src 'sha256-{}'", STANDARD.encode(hash.as_ref()))
        );
    }

    #[test]
    fn errors_carry_name_and_message() {
        let err = Error::not_allowed("Invalid nonce");
        let page = PopupPage::render(&WebMessage::error(&err), "http://a");
        let msg: serde_json::Value =
            serde_json::from_str(&decode(&literals(&page.html)[0])).unwrap();
        assert_eq!(
            msg,
            serde_json::json!({"type": "authorization_response", "error": {"name": "NotAllowedError", "message": "Invalid nonce"}})
        );
    }
}
