//! The `tracefusion` command line. Each subcommand parses its arguments and calls the library.

mod bench;
mod blocks;
mod query;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LoadedConfig, reference_markdown};

#[derive(Debug, Parser)]
#[command(
    name = "tracefusion",
    version,
    about = "A Grafana-Tempo-compatible tracing backend with a TraceQL engine on Apache DataFusion",
    long_about = "A Grafana-Tempo-compatible tracing backend with a TraceQL engine on Apache DataFusion.\n\n\
        Run `tracefusion serve` to start every component in one process with embedded defaults: \
        the Tempo HTTP API on :3200 and data under ./tracefusion-data. Point Grafana at \
        http://localhost:3200 as a Tempo data source."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (all components in one process).
    #[command(long_about = "Run the server: every component in one process.\n\n\
        Without --config the embedded defaults apply: the Tempo HTTP API on :3200 \
        (`GET /ready`, `/api/echo`, `/api/status/buildinfo`), local storage under \
        ./tracefusion-data. A Tempo config file mostly just works: known keys are honoured, \
        unknown keys are reported in one warning, and so are Tempo keys that are accepted \
        but have no effect here. Stop with Ctrl-C or SIGTERM; in-flight \
        requests finish first (server.graceful_shutdown_timeout).\n\n\
        Examples:\n  tracefusion serve\n  tracefusion serve --config tempo.yaml --config.expand-env")]
    Serve(ConfigArgs),
    /// Parse and validate TraceQL; print the canonical form or the error.
    #[command(
        long_about = "Parse and validate TraceQL queries. Prints each query's canonical form, \
        or the error with its line and column and a caret under the query. Exit status 0 when \
        every query is valid, 1 otherwise.\n\n\
        With --json, one JSON object per query and line:\n  \
        {\"query\":…,\"ok\":true,\"canonical\":…}\n  \
        {\"query\":…,\"ok\":false,\"kind\":\"parse\"|\"validate\"|\"unsupported\",\"line\":L,\"col\":C,\"message\":…}\n\n\
        Examples:\n  tracefusion parse '{ span.http.status_code >= 500 } | count() > 2'\n  \
        tracefusion parse --json --file queries.txt"
    )]
    Parse {
        /// The query (omit it with --file).
        #[arg(
            required_unless_present = "file",
            conflicts_with = "file",
            allow_hyphen_values = true
        )]
        query: Option<String>,
        /// Read queries from FILE, one per line (blank lines and lines starting with # skipped).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Print one JSON object per query.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration, or the reference of every key.
    #[command(
        long_about = "Print the effective configuration as YAML: the defaults overlaid with \
        --config, secrets left out. Unknown keys in the file are listed on stderr.\n\n\
        Examples:\n  tracefusion config --config tempo.yaml\n  tracefusion config --reference"
    )]
    Config {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print the table of every key with its default and meaning (Markdown) instead.
        #[arg(long)]
        reference: bool,
    },
    /// Inspect the blocks of a configured store: list, inspect one, find a trace.
    #[command(
        long_about = "Tools over the blocks of the configured store (storage.trace in \
        --config; the local ./tracefusion-data by default).\n\n\
        Examples:\n  tracefusion blocks list\n  tracefusion blocks inspect 0b6c…\n  \
        tracefusion blocks --config tempo.yaml trace 4bf92f3577b34da6a3ce929d0e0e4736"
    )]
    Blocks {
        #[command(flatten)]
        config: ConfigArgs,
        /// Tenant whose blocks to read.
        #[arg(long, default_value = "single-tenant", global = true)]
        tenant: String,
        #[command(subcommand)]
        command: blocks::BlocksCommand,
    },
    /// Run SQL over a tenant's span table (`spans`) in the configured store.
    #[command(
        long_about = "Run SQL (DataFusion's dialect) over the span table of a tenant's \
        blocks, registered as `spans`. The columns are listed in the README; typed attribute \
        maps are indexed by key. Queries only: DDL (`CREATE EXTERNAL TABLE`), `COPY … TO` and \
        `SET` are refused.\n\n\
        Examples:\n  tracefusion sql \"SELECT service_name, count(*) FROM spans GROUP BY 1 ORDER BY 2 DESC\"\n  \
        tracefusion sql \"SELECT name, duration_ns FROM spans WHERE span_attr_int['http.response.status_code'] >= 500\""
    )]
    Sql {
        #[command(flatten)]
        config: ConfigArgs,
        /// Tenant whose blocks to query.
        #[arg(long, default_value = "single-tenant")]
        tenant: String,
        /// The SQL query.
        query: String,
    },
    /// Run a TraceQL search and print the matching traces.
    #[command(
        long_about = "Run a TraceQL search over the configured store's blocks (or, with \
        --server, a running tracefusion or Tempo) and print the newest matching traces with \
        their spansets, as a table or as Tempo's search JSON.\n\n\
        Examples:\n  tracefusion query '{ status = error } | count() > 1'\n  \
        tracefusion query --json --limit 5 '{ resource.service.name = \"checkout\" } >> { status = error }'\n  \
        tracefusion query --server http://localhost:3200 '{ kind = server }'"
    )]
    Query {
        #[command(flatten)]
        config: ConfigArgs,
        /// Tenant to search.
        #[arg(long, default_value = "single-tenant")]
        tenant: String,
        /// Traces to return (newest first).
        #[arg(long, default_value_t = crate::exec::search::DEFAULT_LIMIT)]
        limit: usize,
        /// Spans per spanset to return.
        #[arg(long, default_value_t = crate::exec::search::DEFAULT_SPSS)]
        spss: usize,
        /// Only spans starting at or after this Unix time (seconds).
        #[arg(long, requires = "end")]
        start: Option<i64>,
        /// Only spans starting at or before this Unix time (seconds).
        #[arg(long, requires = "start")]
        end: Option<i64>,
        /// Print Tempo's search response JSON.
        #[arg(long)]
        json: bool,
        /// Ask this server's /api/search instead of reading the store.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// The TraceQL query.
        #[arg(allow_hyphen_values = true)]
        query: String,
    },
    /// Print the DataFusion plans of a TraceQL search.
    #[command(
        long_about = "Print the optimized logical plan and the physical plan DataFusion runs for \
        a TraceQL search over the configured store: which filters reach the Parquet scan, the \
        joins of structural operators, the windows of aggregates.\n\n\
        Example:\n  tracefusion explain '{ kind = server } >> { status = error }'"
    )]
    Explain {
        #[command(flatten)]
        config: ConfigArgs,
        /// Tenant whose blocks to plan over.
        #[arg(long, default_value = "single-tenant")]
        tenant: String,
        /// The TraceQL query.
        #[arg(allow_hyphen_values = true)]
        query: String,
    },
    /// Generate deterministic synthetic traces as OTLP files or blocks.
    #[command(
        long_about = "Generate synthetic traces from a seeded microservice topology \
        (3–60 spans per trace, attributes of every type, errors, events, links). The same seed \
        always gives the same traces.\n\n\
        Examples:\n  tracefusion generate --traces 100000            # blocks in the configured store\n  \
        tracefusion generate --traces 1000 --out traces.jsonl --format json"
    )]
    Generate(blocks::GenerateArgs),
    /// Measure ingest, storage, lookups and search on generated data, in one run.
    #[command(
        long_about = "Measure the whole path on the seeded generator's data: OTLP ingest over \
        gRPC and HTTP into a `tracefusion serve` started on a temporary folder (spans/s, peak \
        RSS), trace by id while live and from blocks (p50/p99), time until every span is in a \
        block, bytes per span on disk by column group, a list of TraceQL searches (median \
        latency, bytes and spans read), tag lookups, and block write throughput. Prints a \
        table and writes the figures as JSON; --compare prints each figure's ratio to an \
        earlier run's.\n\n\
        Examples:\n  cargo run --release -- bench\n  \
        tracefusion bench --spans 200000 --json after.json --compare before.json"
    )]
    Bench(bench::BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// YAML configuration file, with Tempo's key names. Without it, defaults apply.
    #[arg(long = "config", visible_alias = "config.file", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Replace ${VAR} and ${VAR:-default} in the file with environment variables
    /// (as Tempo's -config.expand-env).
    #[arg(long = "config.expand-env", visible_alias = "expand-env")]
    pub expand_env: bool,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<LoadedConfig, crate::config::ConfigError> {
        match &self.config {
            Some(path) => Config::load(path, self.expand_env),
            None => Ok(LoadedConfig::defaults()),
        }
    }
}

/// Entry point of the binary.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Parse { query, file, json } => parse(query, file, json),
        Command::Blocks {
            config,
            tenant,
            command,
        } => blocks::blocks(&config, &tenant, command),
        Command::Generate(args) => blocks::generate(args),
        Command::Bench(args) => bench::bench(args),
        Command::Sql {
            config,
            tenant,
            query,
        } => sql::sql(&config, &tenant, &query),
        Command::Query {
            config,
            tenant,
            limit,
            spss,
            start,
            end,
            json,
            server,
            query: text,
        } => query::query(
            &config,
            query::QueryArgs {
                tenant: &tenant,
                text: &text,
                options: crate::exec::search::SearchOptions {
                    limit,
                    spss,
                    start: start.map(|s| s.saturating_mul(1_000_000_000)),
                    end: end.map(|e| e.saturating_mul(1_000_000_000)),
                    ..crate::exec::search::SearchOptions::default()
                },
                json,
                server: server.as_deref(),
            },
        ),
        Command::Explain {
            config,
            tenant,
            query: text,
        } => query::explain(&config, &tenant, &text),
        Command::Config { config, reference } => {
            if reference {
                print!("{}", reference_markdown());
                return ExitCode::SUCCESS;
            }
            match config.load() {
                Ok(loaded) => {
                    if !loaded.unknown_keys.is_empty() {
                        eprintln!("unknown keys (ignored): {}", loaded.unknown_keys.join(", "));
                    }
                    if !loaded.inert_keys.is_empty() {
                        eprintln!(
                            "accepted for compatibility, has no effect: {}",
                            loaded.inert_keys.join(", ")
                        );
                    }
                    print!("{}", loaded.config.to_yaml());
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error),
            }
        }
    }
}

fn serve(args: &ConfigArgs) -> ExitCode {
    let loaded = match args.load() {
        Ok(loaded) => loaded,
        Err(error) => return fail(&error),
    };
    let config = loaded.config;
    crate::telemetry::init_logging(config.server.log_level, config.server.log_format);
    if !loaded.unknown_keys.is_empty() {
        tracing::warn!(
            keys = %loaded.unknown_keys.join(", "),
            "ignoring configuration keys tracefusion does not know"
        );
    }
    if !loaded.inert_keys.is_empty() {
        tracing::warn!(
            keys = %loaded.inert_keys.join(", "),
            "accepted for compatibility, has no effect"
        );
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    match runtime.block_on(crate::app::serve(config, crate::app::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse(query: Option<String>, file: Option<PathBuf>, json: bool) -> ExitCode {
    let queries: Vec<String> = match (query, file) {
        (Some(query), _) => vec![query],
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .map(str::to_string)
                .collect(),
            Err(error) => return fail(&format!("cannot read {}: {error}", path.display())),
        },
        (None, None) => unreachable!("clap requires a query or --file"),
    };
    let mut all_ok = true;
    for query in &queries {
        let result = crate::traceql::compile(query);
        all_ok &= result.is_ok();
        if json {
            let object = match &result {
                Ok(ast) => {
                    serde_json::json!({"query": query, "ok": true, "canonical": ast.to_string()})
                }
                Err(e) => serde_json::json!({
                    "query": query, "ok": false, "kind": e.kind.as_str(),
                    "line": e.line, "col": e.col, "message": e.message,
                }),
            };
            println!("{object}");
        } else {
            match &result {
                Ok(ast) => println!("{ast}"),
                Err(e) => println!("{}", e.render(query)),
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Stack of the command runtime's threads: the CLI plans queries on them, and a query within
/// the bounds of [`crate::traceql::bounds`] recurses deeper than tokio's default 2 MiB.
const COMMAND_STACK_BYTES: usize = 16 << 20;

/// The runtime a command's async work runs on.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(COMMAND_STACK_BYTES)
        .enable_all()
        .build()
}

/// What the configured store holds (its blocks, listed once), for the query commands.
async fn store_sources(config: &ConfigArgs) -> anyhow::Result<crate::exec::sources::QuerySources> {
    let config = config.load().map_err(anyhow::Error::msg)?.config;
    let store = crate::storage::open_store(&config.storage.trace)?;
    let blocklist = std::sync::Arc::new(crate::storage::Blocklist::new(store.clone()));
    blocklist.poll().await?;
    let reader = std::sync::Arc::new(crate::storage::TraceReader::new(store.clone(), blocklist));
    Ok(crate::exec::sources::QuerySources::new(
        store,
        reader,
        None,
        config.storage.trace.block.parquet_dedicated_columns,
        crate::exec::session::MemoryLimits {
            total: config.querier.memory_limit.0 as usize,
            per_query: config.querier.query_memory_limit.0 as usize,
        },
    )?)
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}
