//! Token issuing throughput, without an HTTP layer: `cargo bench -p stagepass-identity`.
//!
//! Times N issues on one task and spread over all cores, and 10 N cached JWKS reads, printing
//! operations per second: with memory stores to 1,000 users round robin; with SQLite file stores
//! to a new user per token (every token writes its user's row) and to one user (a row already
//! written in the same second is not written again). Set `ISSUE_BENCH_N` to change N.
//!
//! It starts with the floor under every token: raw ES256 signatures of a token-sized input with
//! `ring`, on one core and on all of them. With the argument `--raw-es256` it prints only those
//! two lines (`cargo xtask bench` reads them, so that its results read as a share of what this
//! machine can sign).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::Arc;
use std::time::Instant;

use stagepass_core::{EntityRef, Error, Result, TokenIssuer, TokenParams};
use stagepass_identity::{SqliteDatabase, TokenFactory};

/// How many distinct users the tokens of the memory stores are issued to, round robin.
const USERS: usize = 1000;

/// The token parameters of `users` distinct users.
fn params(users: usize) -> Result<Vec<TokenParams>> {
    let group =
        EntityRef::new("group", "default", "team-a").map_err(|e| Error::internal(e.to_string()))?;
    (0..users)
        .map(|i| {
            let sub = EntityRef::user("default", &format!("user-{i}"))
                .map_err(|e| Error::internal(e.to_string()))?;
            Ok(TokenParams::new(sub.clone(), vec![sub, group.clone()]))
        })
        .collect()
}

fn report(what: &str, n: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<44} {n:>7} in {secs:>6.3} s = {:>9.0}/s",
        n as f64 / secs
    );
}

async fn sequential(what: &str, factory: &TokenFactory, n: usize, users: usize) -> Result<()> {
    let params = params(users)?;
    factory.issue_token(params[0].clone()).await?; // creates the key
    let started = Instant::now();
    for i in 0..n {
        factory.issue_token(params[i % users].clone()).await?;
    }
    report(what, n, started);
    Ok(())
}

async fn concurrent(what: &str, factory: Arc<TokenFactory>, n: usize, users: usize) -> Result<()> {
    let params = Arc::new(params(users)?);
    factory.issue_token(params[0].clone()).await?;
    let tasks = std::thread::available_parallelism().map_or(2, |p| p.get()) * 4;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let factory = factory.clone();
            let params = params.clone();
            tokio::spawn(async move {
                for i in (task..n).step_by(tasks) {
                    factory.issue_token(params[i % users].clone()).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for handle in handles {
        handle.await.map_err(|e| Error::internal(e.to_string()))??;
    }
    report(what, n, started);
    Ok(())
}

async fn jwks(factory: &TokenFactory, n: usize) -> Result<()> {
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += factory.jwks_json().await?.len();
    }
    report("jwks_json (cached)", n, started);
    std::hint::black_box(bytes);
    Ok(())
}

/// Signs `n` token-sized inputs with a fresh P-256 key.
fn sign_es256(n: usize) -> Result<()> {
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

    let random = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
        .map_err(|_| Error::internal("could not generate a key"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
        .map_err(|_| Error::internal("could not load the key"))?;
    // About the size of a Backstage token's header and claims, base64url-encoded.
    let input = [b'e'; 420];
    for _ in 0..n {
        let signature = key
            .sign(&random, &input)
            .map_err(|_| Error::internal("could not sign"))?;
        std::hint::black_box(signature);
    }
    Ok(())
}

/// Raw ES256 signatures per second on one core and on all cores (one thread per core).
fn raw_es256(n: usize) -> Result<()> {
    let started = Instant::now();
    sign_es256(n)?;
    report("ES256 signatures (ring), 1 core", n, started);
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || sign_es256(n)))
        .collect();
    for handle in handles {
        handle
            .join()
            .map_err(|_| Error::internal("a signing thread panicked"))??;
    }
    report("ES256 signatures (ring), all cores", n * threads, started);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::var("ISSUE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    raw_es256(n)?;
    if std::env::args().any(|arg| arg == "--raw-es256") {
        return Ok(());
    }
    let issuer = "http://localhost:7007/api/auth";

    let memory = Arc::new(TokenFactory::builder(issuer).build()?);
    sequential("issue, memory stores, 1 task", &memory, n, USERS).await?;
    concurrent("issue, memory stores, all cores", memory.clone(), n, USERS).await?;
    jwks(&memory, n * 10).await?;

    let dir = tempfile::tempdir().map_err(|e| Error::internal(e.to_string()))?;
    let db = SqliteDatabase::connect(dir.path().join("bench.sqlite")).await?;
    let sqlite = Arc::new(
        TokenFactory::builder(issuer)
            .key_store(Arc::new(db.key_store()))
            .user_info_store(Arc::new(db.user_info_store()))
            .build()?,
    );
    sequential("issue, sqlite file, 1 task, new user each", &sqlite, n, n).await?;
    concurrent(
        "issue, sqlite file, all cores, new user each",
        sqlite.clone(),
        n,
        n,
    )
    .await?;
    concurrent("issue, sqlite file, all cores, one user", sqlite, n, 1).await?;
    db.close().await;
    Ok(())
}
