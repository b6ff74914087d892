//! Hostile and careless queries against a running server: chains of every operator kind at
//! and past the bounds, deep nesting, huge regexes, wide selects and oversized text are
//! answered (200 below the bounds, 400 naming the bound past them) and the process stays up;
//! queries are stopped at the timeout and when their client goes away, refused past the
//! tenant's concurrency and memory limits, and never stall `/ready`.

use std::process::Command;
use std::time::{Duration, Instant};

use tracefusion::traceql::bounds::{
    MAX_FILTER_OPERATORS, MAX_FILTER_POWERS, MAX_PIPES, MAX_QUERY_OPERATORS,
};

use crate::serve::write_config;
use crate::support::{ChildGuard, binary, free_port};

const STARTUP: Duration = Duration::from_secs(60);

struct Server {
    child: ChildGuard,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A server over `traces` generated traces, with `extra` config.
async fn server(traces: usize, extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, extra);
    let generated = Command::new(binary())
        .args(["generate", "--traces", &traces.to_string(), "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let base = format!("http://127.0.0.1:{port}");
    let child = crate::support::serve(&config, &[], &base, STARTUP).await;
    let client = reqwest::Client::new();
    Server {
        child,
        base,
        client,
        _dir: dir,
    }
}

impl Server {
    async fn get(&self, path: &str, q: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(&[("q", q)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} with a {}-byte q: {e}", q.len()));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn assert_up(&mut self, after: &str) {
        self.assert_ready_quickly(after).await;
        assert!(self.child.has_exited().is_none());
    }

    async fn assert_ready_quickly(&self, after: &str) {
        let started = Instant::now();
        let ready = self.client.get(format!("{}/ready", self.base)).send().await;
        assert!(
            ready.is_ok_and(|r| r.status() == 200),
            "the server is down after {after}:\n{}",
            self.child.log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "/ready took {:?} after {after}",
            started.elapsed()
        );
    }

    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.pid())).unwrap();
        // Fields after the command name, which is in parentheses: utime and stime are 14, 15.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }
}

/// `n` copies of `item` joined by `sep`.
fn chain(item: &str, sep: &str, n: usize) -> String {
    vec![item; n].join(sep)
}

/// `{ }` joined by `op`, with `ops` operators.
fn spansets(op: &str, ops: usize) -> String {
    chain("{ }", &format!(" {op} "), ops + 1)
}

/// A filter whose only operators are `ops` copies of `op` between numbers, after `.a =`.
fn arithmetic(op: &str, ops: usize) -> String {
    format!("{{ .a = {} }}", chain("1", &format!(" {op} "), ops))
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_queries_are_answered_or_refused_and_the_server_stays_up() {
    // Below the bounds a query must be answered, not time out, even on a loaded CI machine.
    let mut server = server(20, "query_frontend:\n  search:\n    query_timeout: 5m\n").await;
    let filter_ops = MAX_FILTER_OPERATORS;
    // (what, query, expected status, text the answer must contain)
    let mut cases: Vec<(String, String, u16, String)> = Vec::new();
    cases.push((
        "^ chain at its bound".into(),
        arithmetic("^", MAX_FILTER_POWERS + 1),
        200,
        String::new(),
    ));
    cases.push((
        "^ chain past its bound".into(),
        arithmetic("^", MAX_FILTER_POWERS + 2),
        400,
        format!("at most {MAX_FILTER_POWERS} `^` operators"),
    ));
    for op in ["+", "-", "*", "/", "%"] {
        // `.a = 1 op … op 1` has one `=` and ops-1 of `op`.
        cases.push((
            format!("{op} chain at the bound"),
            arithmetic(op, filter_ops),
            200,
            String::new(),
        ));
        cases.push((
            format!("{op} chain past the bound"),
            arithmetic(op, filter_ops + 1),
            400,
            format!("at most {filter_ops} operators"),
        ));
    }
    for op in ["||", "&&"] {
        let at_bound = filter_ops.div_ceil(2);
        let terms = |n: usize| {
            (0..n)
                .map(|i| format!(".a = {i}"))
                .collect::<Vec<_>>()
                .join(&format!(" {op} "))
        };
        cases.push((
            format!("{op} of {at_bound} comparisons"),
            format!("{{ {} }}", terms(at_bound)),
            200,
            String::new(),
        ));
        cases.push((
            format!("{op} of {} comparisons", at_bound + 1),
            format!("{{ {} }}", terms(at_bound + 1)),
            400,
            format!("at most {filter_ops} operators"),
        ));
    }
    for op in [
        "&&", "||", ">>", "<<", ">", "<", "~", "!>>", "!<<", "!>", "!<", "!~", "&>>", "&<<", "&>",
        "&<", "&~",
    ] {
        cases.push((
            format!("{op} between spansets at the bound"),
            spansets(op, MAX_QUERY_OPERATORS),
            200,
            String::new(),
        ));
        cases.push((
            format!("{op} between spansets past the bound"),
            spansets(op, MAX_QUERY_OPERATORS + 1),
            400,
            format!("at most {MAX_QUERY_OPERATORS} operators outside spanset filters"),
        ));
    }
    // Nested to the right, the kept side of each operator is itself a chain: each side must
    // appear in the plan once, or the plan doubles with every operator.
    for op in ["&&", ">>", "!>>", "&>>", "~"] {
        let mut nested = "{ }".to_string();
        for _ in 0..MAX_QUERY_OPERATORS {
            nested = format!("{{ }} {op} ({nested})");
        }
        cases.push((
            format!("{op} nested to the right at the bound"),
            nested,
            200,
            String::new(),
        ));
    }
    for stage in ["| count() > 0", "| select(.a)"] {
        cases.push((
            format!("{stage} stages at the bound"),
            format!("{{ }} {}", chain(stage, " ", MAX_PIPES)),
            200,
            String::new(),
        ));
        cases.push((
            format!("{stage} stages past the bound"),
            format!("{{ }} {}", chain(stage, " ", MAX_PIPES + 1)),
            400,
            format!("at most {MAX_PIPES} pipeline stages"),
        ));
    }
    let depth = tracefusion::traceql::MAX_NESTING;
    cases.extend([
        (
            "parentheses nested at the bound".into(),
            format!(
                "{{ {}.a = 1{} }}",
                "(".repeat(depth - 1),
                ")".repeat(depth - 1)
            ),
            200,
            String::new(),
        ),
        (
            "parentheses nested past the bound".into(),
            format!(
                "{{ {}.a = 1{} }}",
                "(".repeat(depth + 1),
                ")".repeat(depth + 1)
            ),
            400,
            format!("more than {depth} levels"),
        ),
        (
            "negations nested past the bound".into(),
            format!("{{ {}true }}", "!".repeat(depth + 1)),
            400,
            format!("more than {depth} levels"),
        ),
        (
            "parentheses nested ten thousand deep".into(),
            format!("{{ {}.a = 1{} }}", "(".repeat(10_000), ")".repeat(10_000)),
            400,
            format!("more than {depth} levels"),
        ),
        (
            "a regex too large to compile".into(),
            r#"{ name =~ "a{1000}{1000}{1000}" }"#.into(),
            400,
            "regex".into(),
        ),
        (
            "a select of 200 attributes".into(),
            format!(
                "{{ }} | select({})",
                (0..200)
                    .map(|i| format!(".attr{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            200,
            String::new(),
        ),
    ]);

    for (what, query, status, says) in &cases {
        let started = Instant::now();
        let (got, body) = server.get("/api/search", query).await;
        assert_eq!(got, *status, "{what}: {body}");
        assert!(body.contains(says.as_str()), "{what}: {body}");
        server.assert_up(what).await;
        // Autocomplete takes the same text, and must not fall over either.
        let (got, body) = server.get("/api/v2/search/tags", query).await;
        assert_eq!(got, 200, "tags with {what}: {body}");
        server.assert_up(&format!("tags with {what}")).await;
        eprintln!("{what}: {:?}", started.elapsed());
    }

    // More than 128 KiB does not fit a URL; every surface parses with the same bound.
    let oversized = format!("{{ name = \"{}\" }}", "x".repeat(130 << 10));
    let refused = tracefusion::traceql::compile(&oversized).unwrap_err();
    assert!(refused.message.contains("131072 allowed"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_stop_at_the_timeout_and_when_the_client_goes_away() {
    // Seconds of structural joins over 6 000 traces after a plan of a fraction of one (a
    // plan is made in one step that cannot be cancelled): a client that goes away finds the
    // query executing.
    let heavy = spansets(">>", MAX_QUERY_OPERATORS);
    let mut server = server(6000, "query_frontend:\n  search:\n    query_timeout: 1s\n").await;

    // Past the timeout: 504 with the key to raise, soon after the timeout; `/ready` answers
    // quickly meanwhile.
    let started = Instant::now();
    let query = server.get("/api/search", &heavy);
    let ready = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.assert_ready_quickly("a heavy query started").await;
    };
    let ((status, body), ()) = futures::join!(query, ready);
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains("query_frontend.search.query_timeout"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A client that goes away: the query's CPU use stops.
    let gone = server
        .client
        .get(format!("{}/api/search", server.base))
        .query(&[("q", heavy.as_str())])
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the answer");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = server.cpu_seconds() - before;
    assert!(
        used < 0.5,
        "the server used {used:.2} s of CPU in the 2 s after the client went away"
    );
    server.assert_up("a client went away").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_past_its_concurrency_or_memory_limit_is_refused_clearly() {
    let server = server(2000, "query_frontend:\n  max_outstanding_per_tenant: 1\n").await;
    let heavy = spansets(">>", MAX_QUERY_OPERATORS);
    let running = server.get("/api/search", &heavy);
    let refused = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server
            .client
            .get(format!("{}/api/search", server.base))
            .query(&[("q", "{ }")])
            .send()
            .await
            .unwrap()
    };
    let ((status, body), refused) = futures::join!(running, refused);
    assert_eq!(status, 200, "{body}");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let text = refused.text().await.unwrap();
    assert!(text.contains("max_outstanding_per_tenant"), "{text}");
    // The slot is free again once the first query is done.
    assert_eq!(server.get("/api/search", "{ }").await.0, 200);

    let small = self::server(200, "querier:\n  query_memory_limit: 1KiB\n").await;
    for query in ["{ } | count() > 1", "{ } >> { }", "{ } &~ { }"] {
        let (status, body) = small.get("/api/search", query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body.contains("querier.query_memory_limit"),
            "{query}: {body}"
        );
    }
}

/// Queries run on their own runtime: while eight heavy searches keep every core busy, small
/// OTLP pushes are still acknowledged with a p99 under a second.
#[tokio::test(flavor = "multi_thread")]
async fn ingest_stays_fast_while_eight_heavy_queries_run() {
    use prost::Message;
    let server = server(3000, "query_frontend:\n  search:\n    query_timeout: 5m\n").await;
    let heavy = spansets("~", 1);
    let queries: Vec<_> = (0..8)
        .map(|_| {
            let request = server
                .client
                .get(format!("{}/api/search", server.base))
                .query(&[("q", heavy.as_str())]);
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let otlp = format!("http://127.0.0.1:{}/v1/traces", port + 1);
    let mut latencies = Vec::new();
    for seed in 0..50 {
        let body = crate::ingest::request_of(&crate::storage::generate(1000 + seed, 1));
        let started = Instant::now();
        let response = server
            .client
            .post(&otlp)
            .header("Content-Type", "application/x-protobuf")
            .body(body.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        latencies.push(started.elapsed());
    }
    let still_running = queries.iter().filter(|q| !q.is_finished()).count();
    assert!(
        still_running > 0,
        "the searches ended before the pushes did: nothing was measured under load"
    );
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    eprintln!("push p50 {:?}, p99 {p99:?}", latencies[latencies.len() / 2]);
    assert!(
        p99 < Duration::from_secs(1),
        "push p99 {p99:?} with {still_running} heavy searches running: {latencies:?}"
    );
    for query in queries {
        query.abort();
    }
}
