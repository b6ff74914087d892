//! Helpers shared by the test modules: the built binary, free ports, child processes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `tracefusion` binary cargo built for this test run.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tracefusion"))
}

/// A TCP port that was free a moment ago on the loopback interface, with the port after it
/// (servers configured from one port also listen on the next), never handed out twice
/// by this process. Ports come from below the kernel's ephemeral range (32768 and up), so
/// no outgoing connection or `bind(0)` of a concurrent test takes one between this check
/// and the server's bind; the start point depends on the process id, so two test runs on
/// one machine start far apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() * 997 % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    // Ports come in pairs: servers configured from one port listen on it and on the next.
    loop {
        let port = (FIRST + NEXT.fetch_add(2, Ordering::SeqCst) % COUNT) as u16;
        let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
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

/// An in-process ingester over `store` with its WAL in `dir/wal`, no fsync, no per-trace
/// limit, default block options, and memory enough for any test: traces go to the head after
/// `idle`, and a head is cut at `max_block_bytes` (or after an hour).
pub(crate) async fn ingester(
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
    .await
    .expect("open the ingester")
}

/// Starts a real S3 server (`s3s-fs`, in this process) over the folder `root`, whose
/// subfolders are buckets; returns its port on 127.0.0.1. It serves until the test ends.
pub async fn s3_server(root: &std::path::Path, access_key: &str, secret_key: &str) -> u16 {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let mut builder =
        s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).expect("s3s-fs root"));
    builder.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the S3 server");
    let port = listener.local_addr().expect("S3 address").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    port
}

/// A Python interpreter that can `import pyarrow`: a virtual environment under the target
/// directory, made (and pyarrow installed from PyPI) on first use, so a machine with only
/// `python3` runs the tests. Panics with what is missing if that cannot be done.
pub fn python_with_pyarrow() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pyarrow-venv");
            let python = venv.join("bin/python");
            let has_pyarrow = |python: &std::path::Path| {
                Command::new(python)
                    .args(["-c", "import pyarrow"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            if has_pyarrow(&python) {
                return python;
            }
            // Made beside the final folder and renamed into place, so a run killed halfway
            // (or a second test process) never sees a half-installed environment.
            let building = venv.with_extension(format!("building-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&building);
            let run = |command: &mut Command, what: &str| {
                let output = command
                    .output()
                    .unwrap_or_else(|e| panic!("{what}: cannot run it: {e}"));
                assert!(
                    output.status.success(),
                    "{what} failed; the pyarrow test needs python3 with the venv module and \
                     access to PyPI:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            };
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&building),
                "python3 -m venv",
            );
            run(
                Command::new(building.join("bin/python")).args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "pyarrow>=17",
                ]),
                "pip install pyarrow",
            );
            if std::fs::rename(&building, &venv).is_err() {
                // Another process finished first; use its environment.
                let _ = std::fs::remove_dir_all(&building);
            }
            assert!(
                has_pyarrow(&python),
                "{} cannot import pyarrow",
                python.display()
            );
            python
        })
        .clone()
}

/// Runs `script` with pyarrow's python, `args` after it; returns what it printed, or fails the
/// test with what it wrote to stderr.
pub(crate) fn run_pyarrow(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(python_with_pyarrow())
        .args(["-c", script])
        .args(args)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `tracefusion serve --config config` (with `env` added) and waits, at most `startup`,
/// until `origin/ready` answers.
pub(crate) async fn serve(
    config: &std::path::Path,
    env: &[(&str, &str)],
    origin: &str,
    startup: Duration,
) -> ChildGuard {
    let mut child = ChildGuard::spawn(
        Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied()),
    );
    wait_ready(
        &reqwest::Client::new(),
        &format!("{origin}/ready"),
        &mut child,
        startup,
    )
    .await;
    child
}
