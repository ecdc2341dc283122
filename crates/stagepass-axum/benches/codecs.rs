//! Micro-benchmarks of the per-request work of the protocol: the state codec, cookie
//! encryption and the popup page, reached through the private `_bench` feature (which the
//! crate's dev-dependency on itself turns on). Run with `cargo bench -p stagepass-axum`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use stagepass_axum::bench::{CookieCipher, OAuthState, PopupPage, WebMessage};
use stagepass_core::{AuthResponse, ProfileInfo, SessionSecret};

fn bench(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let elapsed = start.elapsed();
    let per_op = elapsed / iterations;
    let per_sec = f64::from(iterations) / elapsed.as_secs_f64();
    println!("{name:<28} {per_op:>10.2?}/op {per_sec:>14.0} ops/s");
}

fn main() {
    let state = OAuthState {
        nonce: "q1JwXb0VZq9Qb1n3Xyf7wQ==".into(),
        env: "development".into(),
        origin: Some("http://localhost:3000".into()),
        flow: Some("popup".into()),
        scope: Some("openid profile email".into()),
        ..Default::default()
    };
    let encoded = state.encode();
    bench("state encode", 200_000, || {
        black_box(black_box(&state).encode());
    });
    bench("state decode", 200_000, || {
        black_box(OAuthState::decode(black_box(&encoded)).unwrap());
    });

    let cipher = CookieCipher::from_secret(&SessionSecret::new("bench-secret"));
    let sealed = cipher.seal(
        "refresh-token:github:development",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    );
    bench("cookie seal", 200_000, || {
        black_box(cipher.seal(
            "refresh-token:github:development",
            black_box("gho_16C7e42F292c6912E7710c838347Ae178B4a"),
        ));
    });
    bench("cookie open", 200_000, || {
        black_box(
            cipher
                .open("refresh-token:github:development", black_box(&sealed))
                .unwrap(),
        );
    });

    let response = AuthResponse {
        profile: ProfileInfo {
            email: Some("jane@example.com".into()),
            display_name: Some("Jane Doe".into()),
            picture: Some("https://example.com/jane.png".into()),
        },
        provider_info: None,
        backstage_identity: None,
    };
    bench("popup page render", 100_000, || {
        black_box(PopupPage::render(
            &WebMessage::response(black_box(&response)),
            "http://localhost:3000",
        ));
    });
}
