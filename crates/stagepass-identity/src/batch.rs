//! Coalescing the user-info upserts of concurrent token issues into one statement per batch.
//!
//! Every issued token writes its user's row, and a refresh storm (many tabs, many users, a load
//! balancer retrying) turns that into many small commits. The SQL stores hand each upsert to one
//! writer task instead, which commits everything queued meanwhile in one statement, keeping only
//! the newest value of each user. A caller still returns only once its row is committed, so a
//! token is never handed out before `/v1/userinfo` can answer for it, on any replica.

use async_trait::async_trait;
use serde_json::Value;
use stagepass_core::{Error, Result};
use tokio::sync::{mpsc, oneshot};

/// How many upserts may wait for the writer before callers wait to queue theirs.
const QUEUE: usize = 4096;

/// The most upserts committed in one statement (a few parameters each, far below the limits of
/// SQLite and PostgreSQL).
const MAX_BATCH: usize = 512;

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
}

impl UpsertQueue {
    /// Starts the writer task. Must be called within a Tokio runtime.
    pub(crate) fn start(writer: impl WriteBatch) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, receiver));
        Self { sender }
    }

    /// Queues the upsert and waits until its batch is committed.
    pub(crate) async fn upsert(&self, user_entity_ref: &str, user_info: &Value) -> Result<()> {
        let json = serde_json::to_string(user_info)
            .map_err(|e| Error::internal(format!("failed to serialize user info: {e}")))?;
        let (done, committed) = oneshot::channel();
        let stopped = || Error::service_unavailable("the user info writer has stopped");
        self.sender
            .send(Pending {
                user_entity_ref: user_entity_ref.to_owned(),
                json,
                done,
            })
            .await
            .map_err(|_| stopped())?;
        committed.await.map_err(|_| stopped())?
    }
}

/// Commits queued upserts in batches until every queue handle is dropped.
async fn run<W: WriteBatch>(writer: W, mut receiver: mpsc::Receiver<Pending>) {
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
        match writer.write(&rows).await {
            Ok(()) => {
                for pending in batch.drain(..) {
                    // The caller may have gone away; the write stands.
                    let _ = pending.done.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    rows = rows.len(),
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
}
