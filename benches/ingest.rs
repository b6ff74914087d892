//! Sustained OTLP ingest against the real server: spans/s over gRPC and over HTTP with several
//! concurrent clients, peak RSS of the server while ingesting, and the time from an
//! acknowledged export to the trace being readable by id.
//!
//! Run: `cargo bench --bench ingest` (default 20 000 traces per protocol, 8 clients);
//! `TF_BENCH_TRACES` and `TF_BENCH_CLIENTS` change the load. Prints a table; the figures go
//! into BENCHMARKS.md.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tracefusion::storage::split_by_trace;
use tracefusion::synth::{Generator, GeneratorConfig};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident set size of `pid` in bytes.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Requests of `per_request` traces each, encoded once so clients only send.
fn requests(seed: u64, traces: usize, per_request: usize) -> (Vec<Vec<u8>>, u64) {
    let mut generator = Generator::new(GeneratorConfig {
        seed,
        ..GeneratorConfig::default()
    });
    let mut out = Vec::new();
    let mut spans = 0u64;
    let mut left = traces;
    while left > 0 {
        let n = left.min(per_request);
        left -= n;
        let request = ExportTraceServiceRequest {
            resource_spans: generator.by_ref().take(n).flatten().collect(),
        };
        spans += request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum::<u64>();
        out.push(request.encode_to_vec());
    }
    (out, spans)
}

fn main() {
    let traces = env("TF_BENCH_TRACES", 20_000);
    let clients = env("TF_BENCH_CLIENTS", 8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (http, otlp_http, otlp_grpc) = (free_port(), free_port(), free_port());
    let config = dir.path().join("tracefusion.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  log_level: warn\n\
             distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:{otlp_grpc}\n        http:\n          endpoint: 127.0.0.1:{otlp_http}\n\
             ingester:\n  trace_idle_period: 2s\n  max_block_duration: 10s\n\
             overrides:\n  defaults:\n    ingestion:\n      rate_limit_bytes: 10GB\n      burst_size_bytes: 10GB\n\
             storage:\n  trace:\n    local:\n      path: {0}/blocks\n    wal:\n      path: {0}/wal\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let server = Killed(
        Command::new(env!("CARGO_BIN_EXE_tracefusion"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tracefusion"),
    );
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::new();
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while client
            .get(format!("{base}/ready"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "server not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    println!(
        "ingest benchmark: {traces} traces per protocol, {clients} concurrent clients, 100 traces per request, WAL fsync on"
    );
    for (protocol, seed) in [("grpc", 1u64), ("http", 2u64)] {
        let (bodies, spans) = requests(seed, traces, 100);
        let bodies = Arc::new(bodies);
        let next = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let started = Instant::now();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let (bodies, next) = (bodies.clone(), next.clone());
                let http_url = format!("http://127.0.0.1:{otlp_http}/v1/traces");
                let grpc_url = format!("http://127.0.0.1:{otlp_grpc}");
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let mut grpc = if protocol == "grpc" {
                        Some(TraceServiceClient::connect(grpc_url).await.unwrap())
                    } else {
                        None
                    };
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(body) = bodies.get(i) else { break };
                        match grpc.as_mut() {
                            Some(grpc) => {
                                let request =
                                    ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                                grpc.export(request).await.expect("gRPC export");
                            }
                            None => {
                                let response = client
                                    .post(&http_url)
                                    .header("Content-Type", "application/x-protobuf")
                                    .body(body.clone())
                                    .send()
                                    .await
                                    .unwrap();
                                assert_eq!(response.status(), 200);
                            }
                        }
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        });
        let elapsed = started.elapsed();
        done.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        println!(
            "  {protocol:<4}  {:>9.0} spans/s  ({spans} spans in {:.2} s)   peak server RSS {:.0} MiB",
            spans as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64(),
            peak.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
        );
    }

    // Export → readable: one more trace, then poll trace by id (live), then until it is
    // served from a block (after trace_idle_period 2 s and max_block_duration 10 s).
    let (bodies, _) = requests(99, 1, 1);
    let request = ExportTraceServiceRequest::decode(bodies[0].as_slice()).unwrap();
    let (traces, _) = split_by_trace(request.resource_spans.clone());
    let id = traces.keys().next().unwrap().to_string();
    runtime.block_on(async {
        let started = Instant::now();
        let response = client
            .post(format!("http://127.0.0.1:{otlp_http}/v1/traces"))
            .header("Content-Type", "application/x-protobuf")
            .body(bodies[0].clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let acked = started.elapsed();
        loop {
            let r = client
                .get(format!("{base}/api/v2/traces/{id}"))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
        }
        let readable = started.elapsed();
        println!(
            "  export → acknowledged {:.1} ms, → readable by id {:.1} ms (live data)",
            acked.as_secs_f64() * 1e3,
            readable.as_secs_f64() * 1e3
        );
    });
}
