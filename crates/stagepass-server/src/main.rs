//! `stagepass-server`: a Backstage-compatible auth backend, configured with Backstage-style
//! `app-config.yaml` files.
//!
//! ```text
//! stagepass-server [--config FILE]...
//! ```
//!
//! Without `--config`, a built-in development configuration is used: the guest provider, an
//! SQLite file `stagepass.sqlite` in the working directory, listening on 127.0.0.1:7007.

use std::process::ExitCode;

use stagepass_server::{Server, builtin_providers};

fn main() -> ExitCode {
    Server::builder()
        .providers(builtin_providers())
        .build()
        .run_from_args()
}
