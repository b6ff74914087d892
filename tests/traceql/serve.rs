//! `tracefusion serve`: starts on defaults or a config file, answers the health endpoints, and
//! stops cleanly and quickly on SIGTERM or SIGINT.

use std::process::Command;
use std::time::Duration;

use crate::support::{ChildGuard, binary, free_port, wait_ready};

const STARTUP: Duration = Duration::from_secs(30);
const SHUTDOWN: Duration = Duration::from_secs(5);

pub fn write_config(dir: &std::path::Path, port: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("tracefusion.yaml");
    let text = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\n  log_format: json\n\
         distributor:\n  receivers:\n    otlp:\n      protocols:\n        http:\n          endpoint: 127.0.0.1:{otlp}\n\
         storage:\n  trace:\n    local:\n      path: {blocks}\n    wal:\n      path: {wal}\n{extra}",
        otlp = port + 1,
        blocks = dir.join("blocks").display(),
        wal = dir.join("wal").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_answers_health_endpoints_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let mut server = ChildGuard::spawn(
        Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&config),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &format!("{base}/ready"), &mut server, STARTUP).await;

    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap().trim(), "ready");

    let echo = client.get(format!("{base}/api/echo")).send().await.unwrap();
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.text().await.unwrap(), "echo");

    let info: serde_json::Value = client
        .get(format!("{base}/api/status/buildinfo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(info[field].is_string(), "buildinfo lacks {field}: {info}");
    }
    // Grafana enables features by comparing this version with Tempo's: it must be semver >= 2.7.
    let version = info["version"].as_str().unwrap();
    let core: Vec<u64> = version
        .split(['+', '-'])
        .next()
        .unwrap()
        .split('.')
        .map(|n| n.parse().expect("numeric semver part"))
        .collect();
    assert_eq!(core.len(), 3, "{version}");
    assert!((core[0], core[1]) >= (2, 7), "{version}");

    let missing = client.get(format!("{base}/api/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // The client keeps its keep-alive connection open: shutdown must not wait for it.
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(SHUTDOWN)
        .expect("serve should stop within 5s of SIGTERM");
    assert!(status.success(), "exit status {status}");

    let log = server.log();
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("log_format json, but {line:?} is not JSON: {e}"));
    }
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_without_arguments_runs_on_embedded_defaults() {
    // Tempo's default port; the test assumes nothing else on this machine listens on 3200.
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildGuard::spawn(Command::new(binary()).arg("serve").current_dir(dir.path()));
    let client = reqwest::Client::new();
    wait_ready(&client, "http://127.0.0.1:3200/ready", &mut server, STARTUP).await;

    server.signal(libc::SIGINT);
    let status = server
        .wait_exit(SHUTDOWN)
        .expect("serve should stop within 5s of SIGINT");
    assert!(status.success(), "exit status {status}");
    assert!(server.log().contains("received SIGINT"));
}

#[test]
fn serve_refuses_an_invalid_config_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        free_port(),
        "ingester:\n  max_block_duration: forever\n",
    );
    let mut server = ChildGuard::spawn(
        Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&config),
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("should exit at once");
    assert_eq!(status.code(), Some(1));
    let log = server.log();
    assert!(
        log.contains("ingester.max_block_duration") && log.contains("forever"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_warns_once_about_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        port,
        "querier:\n  max_concurrent_queries: 4\nmemberlist: {}\n",
    );
    let mut server = ChildGuard::spawn(
        Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&config),
    );
    let client = reqwest::Client::new();
    wait_ready(
        &client,
        &format!("http://127.0.0.1:{port}/ready"),
        &mut server,
        STARTUP,
    )
    .await;
    server.signal(libc::SIGTERM);
    server.wait_exit(SHUTDOWN).expect("stops");

    let log = server.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not know"))
        .collect();
    assert_eq!(warnings.len(), 1, "exactly one warning expected:\n{log}");
    assert!(
        warnings[0].contains("querier") && warnings[0].contains("memberlist"),
        "{}",
        warnings[0]
    );
}

#[test]
fn serve_reports_a_port_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = write_config(dir.path(), port, "");
    let mut server = ChildGuard::spawn(
        Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&config),
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("should exit at once");
    assert_eq!(status.code(), Some(1));
    let log = server.log();
    assert!(
        log.contains(&format!("127.0.0.1:{port}")) && log.contains("http_listen_port"),
        "{log}"
    );
}
