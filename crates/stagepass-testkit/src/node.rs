//! Starting one of the testkit's Node.js servers and waiting for the line of JSON it prints once
//! it listens.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// How long one start may take to print its address. Node.js loads the IdP's packages and makes
/// an RSA key first: well under a second on an idle machine, far longer on a loaded one.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times a server that stays silent is started before the start is given up. A server
/// that exits is not started again: its stderr says why.
const ATTEMPTS: u32 = 2;

/// A start slower than this is reported on stderr, to tell a loaded machine from a hung server.
const SLOW_START: Duration = Duration::from_secs(10);

/// How many of a server's last stderr lines are kept for error messages.
const KEPT_LOG_LINES: usize = 200;

/// The last lines a server wrote to stderr.
pub(crate) type Logs = Arc<Mutex<VecDeque<String>>>;

/// A server that printed its announcement.
#[derive(Debug)]
pub(crate) struct Running<A> {
    pub(crate) announcement: A,
    pub(crate) logs: Logs,
    /// Closing it makes the server exit even if the kill on drop never happens.
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) child: Child,
}

/// How one attempt ended when it did not announce.
enum Failure {
    /// Nothing was printed in time; the stderr lines so far.
    Silent(String),
    /// Anything else: the message for the caller.
    Failed(String),
}

/// Runs the command `command` makes (`node server.js …` in the server's directory) with piped
/// standard streams and waits for the first stdout line that parses as an `A`. A server that
/// stays silent for [`ATTEMPT_TIMEOUT`] is killed and started once more.
pub(crate) async fn start<A: DeserializeOwned>(
    mut command: impl FnMut() -> Command,
    what: &str,
) -> Result<Running<A>, String> {
    let mut silent = String::new();
    for attempt in 1..=ATTEMPTS {
        let started = Instant::now();
        match attempt_start(command()).await {
            Ok(running) => {
                let took = started.elapsed();
                if took > SLOW_START || attempt > 1 {
                    eprintln!("{what} listened after {took:?} (attempt {attempt})");
                }
                return Ok(running);
            }
            Err(Failure::Silent(logs)) => {
                eprintln!(
                    "{what} printed no address within {ATTEMPT_TIMEOUT:?} (attempt {attempt}); \
                     its stderr:\n{logs}"
                );
                silent = logs;
            }
            Err(Failure::Failed(message)) => return Err(message),
        }
    }
    Err(format!(
        "`node server.js` printed no address within {ATTEMPT_TIMEOUT:?}, {ATTEMPTS} times; \
         its stderr:\n{silent}"
    ))
}

async fn attempt_start<A: DeserializeOwned>(mut command: Command) -> Result<Running<A>, Failure> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|error| Failure::Failed(format!("could not run `node server.js`: {error}")))?;
    let logs = Logs::default();
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(keep_lines(stderr, Arc::clone(&logs)));
    }
    let stdin = child.stdin.take();
    let Some(stdout) = child.stdout.take() else {
        return Err(Failure::Failed(
            "the server's stdout was not piped".to_owned(),
        ));
    };
    let mut stdout = BufReader::new(stdout).lines();
    let announced = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
        while let Some(line) = stdout.next_line().await? {
            if let Ok(announcement) = serde_json::from_str::<A>(line.trim()) {
                return Ok(Some(announcement));
            }
        }
        Ok::<_, std::io::Error>(None)
    })
    .await;
    let announcement = match announced {
        Ok(Ok(Some(announcement))) => announcement,
        Ok(Ok(None)) => {
            let status = child.wait().await.map(|status| status.to_string());
            return Err(Failure::Failed(format!(
                "`node server.js` exited ({}) before it listened; its stderr:\n{}",
                status.unwrap_or_else(|error| error.to_string()),
                tail(&logs)
            )));
        }
        Ok(Err(error)) => {
            return Err(Failure::Failed(format!(
                "could not read the server's stdout: {error}"
            )));
        }
        // Dropping `child` kills the silent server.
        Err(_) => return Err(Failure::Silent(tail(&logs))),
    };
    // Nothing more is expected on stdout; drain it so that a stray line never blocks the server.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    Ok(Running {
        announcement,
        logs,
        stdin,
        child,
    })
}

/// Reads `from` line by line into `logs`, keeping the last [`KEPT_LOG_LINES`].
async fn keep_lines(from: impl AsyncRead + Unpin, logs: Logs) {
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
        if logs.len() == KEPT_LOG_LINES {
            logs.pop_front();
        }
        logs.push_back(line);
    }
}

/// The kept lines, one per line.
pub(crate) fn tail(logs: &Mutex<VecDeque<String>>) -> String {
    let logs = logs.lock().unwrap_or_else(PoisonError::into_inner);
    logs.iter().cloned().collect::<Vec<_>>().join("\n")
}
