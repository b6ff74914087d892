//! Helpers shared by the test modules: the built binary, free ports, child processes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `tracefusion` binary cargo built for this test run.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tracefusion"))
}

/// A TCP port that was free a moment ago on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A child process that is killed if the test ends before it does. Its stderr (the log) goes
/// to a file, so a chatty process can never block on a full pipe.
pub struct ChildGuard {
    child: Option<Child>,
    log: tempfile::NamedTempFile,
}

impl ChildGuard {
    pub fn spawn(command: &mut Command) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("reopen log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start tracefusion");
        Self {
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn has_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn signal(&self, signal: i32) {
        let rc = unsafe { libc::kill(self.pid() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
    }

    /// Waits up to `timeout` for the process to exit; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `url` until it answers 200, for at most `timeout`.
pub async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    child: &mut ChildGuard,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status() == 200
        {
            return;
        }
        if let Some(status) = child.has_exited() {
            panic!(
                "tracefusion exited with {status} before it was ready:\n{}",
                child.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer 200 within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until something accepts connections on `port` (at most 20 s).
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An in-process ingester over `store` with its WAL in `dir/wal`, no fsync, no per-trace
/// limit, default block options, and memory enough for any test: traces go to the head after
/// `idle`, and a head is cut at `max_block_bytes` (or after an hour).
pub(crate) fn ingester(
    dir: &std::path::Path,
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    blocklist: std::sync::Arc<tracefusion::storage::Blocklist>,
    idle: Duration,
    max_block_bytes: u64,
) -> std::sync::Arc<tracefusion::ingest::ingester::Ingester> {
    use tracefusion::ingest::ingester::{Ingester, IngesterOptions};
    Ingester::open(
        IngesterOptions {
            trace_idle_period: idle,
            max_block_duration: Duration::from_secs(3600),
            max_block_bytes,
            max_memory_bytes: 1 << 30,
            max_bytes_per_trace: 0,
            block: tracefusion::storage::BlockOptions::default(),
        },
        &dir.join("wal"),
        tracefusion::ingest::wal::SyncPolicy::Never,
        store,
        blocklist,
    )
    .expect("open the ingester")
}
