//! `external-provider-server`: `stagepass-server` with the `userinfo` provider of this crate
//! registered beside the built-in ones, configured from `app-config.yaml` files.
//!
//! ```text
//! cargo run --manifest-path examples/external-provider/Cargo.toml --features server \
//!     --bin external-provider-server -- --config app-config.yaml
//! ```
//!
//! with, for example:
//!
//! ```yaml
//! auth:
//!   providers:
//!     acme:
//!       provider: userinfo
//!       development:
//!         authorizationUrl: https://idp.example/oauth/authorize
//!         tokenUrl: https://idp.example/oauth/token
//!         userinfoUrl: https://idp.example/oauth/userinfo
//!         clientId: backstage
//!         clientSecret: ${ACME_CLIENT_SECRET}
//! ```

use std::process::ExitCode;

use external_provider::UserinfoFactory;
use stagepass_server::{Server, builtin_providers};

fn main() -> ExitCode {
    Server::builder()
        .providers(builtin_providers())
        .provider(UserinfoFactory)
        .build()
        .run_from_args()
}
