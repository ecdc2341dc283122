//! Logging through `tracing`.

use tracing_subscriber::EnvFilter;

/// Starts logging. The level comes from `LOG_LEVEL` (as in Backstage's start command, e.g.
/// `info` or `debug`) or a full `RUST_LOG` filter; the format from `LOG_FORMAT` (`json` or
/// `human`, the default).
pub(crate) fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| {
            std::env::var("LOG_LEVEL")
                .ok()
                .and_then(|level| EnvFilter::try_new(level.to_ascii_lowercase()).ok())
        })
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
