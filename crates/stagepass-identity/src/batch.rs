//! Coalescing the user-info upserts of concurrent token issues into one statement per batch.
//!
//! Every issued token writes its user's row, and a refresh storm (many tabs, many users, a load
//! balancer retrying) turns that into many small commits. The SQL stores hand each upsert to one
//! writer task instead, which commits everything queued meanwhile in one statement, keeping only
//! the newest value of each user. A caller still returns only once its row is committed, so a
//! token is never handed out before `/v1/userinfo` can answer for it, on any replica.
//!
//! The row holds the claims of the newest token, whose `exp` has a resolution of one second: the
//! tokens of one user issued within the same second (several tabs, a retrying client) carry the
//! same row byte for byte. An upsert whose value equals the one this process last committed for
//! the user, with no other write of that user still queued, is therefore already done and skips
//! the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde_json::Value;
use stagepass_core::{Error, Result};
use tokio::sync::{mpsc, oneshot};

/// How many upserts may wait for the writer before callers wait to queue theirs.
const QUEUE: usize = 4096;

/// The most upserts committed in one statement (a few parameters each, far below the limits of
/// SQLite and PostgreSQL).
const MAX_BATCH: usize = 512;

/// How many users' last committed values are remembered; past that, the ones with no queued
/// write are forgotten (their next upsert writes again).
const REMEMBERED_USERS: usize = 4096;

/// How many times the writer lets other tasks run before it commits, as long as each time
/// brings more upserts.
const GATHER_ROUNDS: usize = 4;

/// One row of a batch: the newest user info of one user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a> {
    pub(crate) user_entity_ref: &'a str,
    pub(crate) json: &'a str,
}

/// Commits a batch of rows in one statement.
#[async_trait]
pub(crate) trait WriteBatch: Send + Sync + 'static {
    /// The database's name in logs.
    const NAME: &'static str;

    /// Inserts or replaces `rows` (at most one per user, sorted by user) in one statement.
    async fn write(&self, rows: &[Row<'_>]) -> std::result::Result<(), sqlx::Error>;

    /// The error every caller of a failed batch gets, without the source (logged once).
    fn error(&self, error: &sqlx::Error) -> Error;
}

/// An upsert waiting for the writer.
#[derive(Debug)]
struct Pending {
    user_entity_ref: String,
    json: String,
    done: oneshot::Sender<Result<()>>,
}

/// The queue in front of a [`WriteBatch`]. Cheap to clone; the writer task ends when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct UpsertQueue {
    sender: mpsc::Sender<Pending>,
    written: Written,
}

/// What this process knows of each user's row, shared by the queue and the writer.
type Written = Arc<Mutex<HashMap<String, UserRow>>>;

/// A user's row as this process knows it.
#[derive(Debug, Default)]
struct UserRow {
    /// The value this process last committed (empty before the first commit).
    committed: String,
    /// How many upserts of the user are queued or being written.
    queued: usize,
}

impl UpsertQueue {
    /// Starts the writer task. Must be called within a Tokio runtime.
    pub(crate) fn start(writer: impl WriteBatch) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let written = Written::default();
        tokio::spawn(run(writer, receiver, Arc::clone(&written)));
        Self { sender, written }
    }

    /// Queues the upsert and waits until its batch is committed; returns at once when the row
    /// already holds this value (see the module documentation).
    pub(crate) async fn upsert(&self, user_entity_ref: &str, user_info: &Value) -> Result<()> {
        let json = serde_json::to_string(user_info)
            .map_err(|e| Error::internal(format!("failed to serialize user info: {e}")))?;
        let stopped = || Error::service_unavailable("the user info writer has stopped");
        // A place in the queue first: from here on nothing awaits until the upsert is queued,
        // so a caller that goes away cannot leave `queued` counting an upsert never sent.
        let permit = self.sender.reserve().await.map_err(|_| stopped())?;
        {
            let mut written = lock(&self.written);
            if let Some(row) = written.get_mut(user_entity_ref) {
                if row.queued == 0 && row.committed == json {
                    return Ok(());
                }
                row.queued += 1;
            } else {
                written.insert(
                    user_entity_ref.to_owned(),
                    UserRow {
                        committed: String::new(),
                        queued: 1,
                    },
                );
            }
        }
        let (done, committed) = oneshot::channel();
        permit.send(Pending {
            user_entity_ref: user_entity_ref.to_owned(),
            json,
            done,
        });
        committed.await.map_err(|_| stopped())?
    }
}

/// Locks `written`; a panic while it was held leaves nothing half-done worth refusing.
fn lock(written: &Written) -> std::sync::MutexGuard<'_, HashMap<String, UserRow>> {
    written.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Commits queued upserts in batches until every queue handle is dropped.
async fn run<W: WriteBatch>(writer: W, mut receiver: mpsc::Receiver<Pending>, written: Written) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Under load the writer wakes for nearly every upsert, and each batch costs a round
        // trip to the database. Letting the requests already being served on this thread run
        // first lets them join the batch, at no cost when the server is idle.
        for _ in 0..GATHER_ROUNDS {
            tokio::task::yield_now().await;
            let before = batch.len();
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            if batch.len() == before || batch.len() == MAX_BATCH {
                break;
            }
        }
        let rows = newest_per_user(&batch);
        let outcome = writer.write(&rows).await;
        let row_count = rows.len();
        drop(rows);
        {
            let mut written = lock(&written);
            for pending in &mut batch {
                if let Some(row) = written.get_mut(&pending.user_entity_ref) {
                    row.queued = row.queued.saturating_sub(1);
                    if outcome.is_ok() {
                        // In queue order, so the newest value of the batch stays.
                        row.committed = std::mem::take(&mut pending.json);
                    }
                }
            }
            if written.len() > REMEMBERED_USERS {
                written.retain(|_, row| row.queued > 0);
            }
        }
        match outcome {
            Ok(()) => {
                for pending in batch.drain(..) {
                    // The caller may have gone away; the write stands.
                    let _ = pending.done.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    rows = row_count,
                    "{}: failed to store user info",
                    W::NAME
                );
                for pending in batch.drain(..) {
                    let _ = pending.done.send(Err(writer.error(&e)));
                }
            }
        }
    }
}

/// The newest upsert of each user in `batch`, sorted by user, so that concurrent batches of
/// several replicas lock their rows in the same order.
fn newest_per_user(batch: &[Pending]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row<'_>> = Vec::with_capacity(batch.len());
    for pending in batch.iter().rev() {
        if !rows
            .iter()
            .any(|row| row.user_entity_ref == pending.user_entity_ref)
        {
            rows.push(Row {
                user_entity_ref: &pending.user_entity_ref,
                json: &pending.json,
            });
        }
    }
    rows.sort_unstable_by(|a, b| a.user_entity_ref.cmp(b.user_entity_ref));
    rows
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn pending(user: &str, json: &str) -> Pending {
        Pending {
            user_entity_ref: user.to_owned(),
            json: json.to_owned(),
            done: oneshot::channel().0,
        }
    }

    #[test]
    fn keeps_the_newest_value_of_each_user_sorted_by_user() {
        let batch = [
            pending("user:default/b", "1"),
            pending("user:default/a", "2"),
            pending("user:default/b", "3"),
        ];
        let rows = newest_per_user(&batch);
        let rows: Vec<(&str, &str)> = rows
            .iter()
            .map(|row| (row.user_entity_ref, row.json))
            .collect();
        assert_eq!(rows, [("user:default/a", "2"), ("user:default/b", "3")]);
    }

    /// The rows of one batch: user and JSON.
    type Batch = Vec<(String, String)>;

    /// Records every batch; fails the batches that contain `user:default/broken`.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Batch>>>);

    #[async_trait]
    impl WriteBatch for Recorder {
        const NAME: &'static str = "test";

        async fn write(&self, rows: &[Row<'_>]) -> std::result::Result<(), sqlx::Error> {
            if rows
                .iter()
                .any(|row| row.user_entity_ref == "user:default/broken")
            {
                return Err(sqlx::Error::PoolTimedOut);
            }
            let rows = rows
                .iter()
                .map(|row| (row.user_entity_ref.to_owned(), row.json.to_owned()))
                .collect();
            self.0.lock().unwrap().push(rows);
            Ok(())
        }

        fn error(&self, _: &sqlx::Error) -> Error {
            Error::service_unavailable("test store failed to store user info")
        }
    }

    #[tokio::test]
    async fn concurrent_upserts_share_batches_and_each_caller_learns_the_outcome() {
        let recorder = Recorder::default();
        let queue = UpsertQueue::start(recorder.clone());
        let upserts: Vec<_> = (0..100)
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let user = format!("user:default/u{}", i % 10);
                    queue
                        .upsert(&user, &serde_json::json!({ "claims": { "n": i } }))
                        .await
                })
            })
            .collect();
        for upsert in upserts {
            upsert.await.unwrap().unwrap();
        }
        let batches = recorder.0.lock().unwrap().clone();
        let rows: usize = batches.iter().map(Vec::len).sum();
        assert!(batches.len() < 100, "{} batches", batches.len());
        assert!((10..100).contains(&rows), "{rows} rows");
        for batch in &batches {
            let mut users: Vec<&str> = batch.iter().map(|(user, _)| user.as_str()).collect();
            users.dedup();
            assert_eq!(users.len(), batch.len(), "one row per user: {batch:?}");
        }

        let error = queue
            .upsert("user:default/broken", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(error.status(), 503, "{error}");
    }

    #[tokio::test]
    async fn a_value_already_committed_is_not_written_again() {
        let recorder = Recorder::default();
        let queue = UpsertQueue::start(recorder.clone());
        let jane = "user:default/jane";
        let first = serde_json::json!({ "claims": { "sub": jane, "exp": 1 } });
        let second = serde_json::json!({ "claims": { "sub": jane, "exp": 2 } });
        for value in [&first, &first, &second, &second, &first] {
            queue.upsert(jane, value).await.unwrap();
        }
        let written: Vec<String> = recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|(_, json)| json.clone())
            .collect();
        assert_eq!(
            written,
            [first.to_string(), second.to_string(), first.to_string()]
        );
    }

    #[tokio::test]
    async fn a_failed_write_is_tried_again_by_the_next_upsert() {
        /// Fails its first batch only.
        #[derive(Clone, Default)]
        struct FailsOnce(Arc<Mutex<usize>>);

        #[async_trait]
        impl WriteBatch for FailsOnce {
            const NAME: &'static str = "test";

            async fn write(&self, _: &[Row<'_>]) -> std::result::Result<(), sqlx::Error> {
                let mut calls = self.0.lock().unwrap();
                *calls += 1;
                if *calls == 1 {
                    Err(sqlx::Error::PoolTimedOut)
                } else {
                    Ok(())
                }
            }

            fn error(&self, _: &sqlx::Error) -> Error {
                Error::service_unavailable("test store failed to store user info")
            }
        }

        let writer = FailsOnce::default();
        let queue = UpsertQueue::start(writer.clone());
        let value = serde_json::json!({ "claims": { "exp": 1 } });
        assert!(queue.upsert("user:default/jane", &value).await.is_err());
        queue.upsert("user:default/jane", &value).await.unwrap();
        queue.upsert("user:default/jane", &value).await.unwrap();
        assert_eq!(*writer.0.lock().unwrap(), 2);
    }
}
