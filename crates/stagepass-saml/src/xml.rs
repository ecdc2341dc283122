//! Text written into the XML this service provider sends and serves.

/// Escapes text for an XML attribute or element.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
