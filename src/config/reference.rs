//! The configuration reference: every key with its default and meaning. README.md embeds the
//! rendered table, and a test keeps both in step with the `Config` struct.

use super::Config;

pub struct KeyDoc {
    pub key: &'static str,
    pub doc: &'static str,
}

macro_rules! keys {
    ($($key:literal => $doc:literal,)*) => {
        &[$(KeyDoc { key: $key, doc: $doc },)*]
    };
}

pub const KEY_DOCS: &[KeyDoc] = keys! {
    "target" => "Components this process runs; `all` runs every component in one process.",
    "multitenancy_enabled" => "Read the tenant from `X-Scope-OrgID`; otherwise every request belongs to `single-tenant`.",
    "server.http_listen_address" => "Address of the Tempo HTTP API; empty means every interface.",
    "server.http_listen_port" => "Port of the Tempo HTTP API (`/ready`, `/api/...`).",
    "server.http_api_prefix" => "Path prefix of the query API: `/tempo` serves `/tempo/api/search`, `/tempo/api/v2/traces/{id}`…; `/ready`, `/metrics` and gRPC stay at the root.",
    "server.grpc_listen_address" => "Accepted for compatibility, has no effect: gRPC is served on the HTTP port.",
    "server.grpc_listen_port" => "Accepted for compatibility, has no effect: gRPC is served on the HTTP port.",
    "server.log_level" => "`debug`, `info`, `warn` or `error`; `RUST_LOG` overrides it.",
    "server.log_format" => "`logfmt` (human-readable text; `text` is accepted too) or `json`.",
    "server.graceful_shutdown_timeout" => "How long in-flight requests may take to finish after SIGINT/SIGTERM.",
    "distributor.receivers.otlp.protocols.grpc.endpoint" => "OTLP/gRPC receiver; remove the `grpc` block to disable it.",
    "distributor.receivers.otlp.protocols.http.endpoint" => "OTLP/HTTP receiver (`POST /v1/traces`); remove the `http` block to disable it.",
    "ingester.trace_idle_period" => "A trace with no new span for this long moves from live traces to the head block (as does one live for `ingester.max_block_duration`, so the WAL stays bounded).",
    "ingester.max_block_duration" => "Cut the head block into a stored block after this long.",
    "ingester.max_block_bytes" => "Cut the head block once it holds this many bytes of encoded spans, into blocks of at most this size (integer bytes or `500MiB`).",
    "query_frontend.max_outstanding_per_tenant" => "Searches and span-data tag queries one tenant may have running at once; more are answered 429 with `Retry-After`.",
    "query_frontend.search.query_timeout" => "A query still running after this long is stopped and answered 504 (HTTP) or DEADLINE_EXCEEDED (gRPC).",
    "querier.memory_limit" => "Memory all running queries together may hold in DataFusion operators (sorts, aggregates, joins); a query that needs more while others hold it is answered 503 with `Retry-After`.",
    "querier.query_memory_limit" => "Memory one query may hold in DataFusion operators; a query that needs more is answered 400 and asked to narrow its range or filters.",
    "storage.trace.backend" => "Object store for blocks: `local`, `s3`, `gcs` or `azure`.",
    "storage.trace.blocklist_poll" => "How often readers list the store for new and removed blocks.",
    "storage.trace.block.parquet_row_group_size_bytes" => "A row group closes at the first trace boundary after this many bytes of traces (OTLP protobuf size); row groups hold traces by start time, so a newest-first search stops inside a big block.",
    "storage.trace.block.parquet_dedicated_columns" => "Attributes with columns of their own: a list of `{scope, name, type}` entries, scope `resource` or `span` (default), type `string` (default) or `int`.",
    "storage.trace.local.path" => "Folder of the `local` backend.",
    "storage.trace.wal.path" => "Folder of the write-ahead log (always on local disk).",
    "storage.trace.wal.ingestion_time_range_slack" => "A block's time range (what searches use to pick blocks and order them newest first) counts a span time more than this ahead of the clock as the moment the block is written, so a client clock far ahead does not make its block the newest for good. Spans keep their own times; a search over that future range does not find them (trace by id does). Earlier times are kept as they are.",
    "storage.trace.wal.sync" => "`always`: fsync each request before acknowledging it (grouped across concurrent requests); `never`: leave it to the OS (survives a process crash, not a power loss).",
    "storage.trace.s3.bucket" => "S3 bucket (required for `s3`).",
    "storage.trace.s3.endpoint" => "S3 API host and port without scheme, e.g. `s3.us-east-1.amazonaws.com` or `localhost:9000` (required for `s3`).",
    "storage.trace.s3.region" => "S3 region.",
    "storage.trace.s3.access_key" => "S3 access key id; empty uses the environment's credentials.",
    "storage.trace.s3.insecure" => "Talk plain HTTP to the endpoint.",
    "storage.trace.s3.forcepathstyle" => "Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers.",
    "storage.trace.s3.prefix" => "Prefix of every object key in the bucket.",
    "storage.trace.gcs.bucket_name" => "GCS bucket (required for `gcs`).",
    "storage.trace.gcs.endpoint" => "GCS API endpoint override.",
    "storage.trace.gcs.insecure" => "Talk plain HTTP to the endpoint.",
    "storage.trace.gcs.prefix" => "Prefix of every object name in the bucket.",
    "storage.trace.azure.container_name" => "Azure blob container (required for `azure`).",
    "storage.trace.azure.storage_account_name" => "Azure storage account (required for `azure`).",
    "storage.trace.azure.endpoint_suffix" => "Azure endpoint suffix override.",
    "storage.trace.azure.prefix" => "Prefix of every blob name in the container.",
    "compactor.compaction.block_retention" => "Accepted for compatibility, has no effect: there is no compactor yet, so blocks are kept until deleted by hand.",
    "overrides.defaults.ingestion.rate_limit_bytes" => "Sustained ingest per tenant in bytes of OTLP protobuf per second; beyond it requests get 429.",
    "overrides.defaults.ingestion.burst_size_bytes" => "How far a tenant may burst above the rate.",
    "overrides.defaults.global.max_bytes_per_trace" => "Spans that would make a trace larger than this are refused (`partialSuccess`); 0 means no limit.",
};

/// Tempo's keys that are read (so Tempo users' files load) but change nothing here; start-up
/// names the ones a file sets.
pub const INERT_KEYS: &[&str] = &[
    "server.grpc_listen_address",
    "server.grpc_listen_port",
    "compactor.compaction.block_retention",
];

/// Keys that hold secrets: accepted in the file, never printed, so they have no default row.
pub const SECRET_KEYS: &[&str] = &[
    "storage.trace.s3.secret_key",
    "storage.trace.azure.storage_account_key",
];

/// The reference table in Markdown, defaults taken from `Config::default()`.
pub fn reference_markdown() -> String {
    let defaults = default_values();
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for KeyDoc { key, doc } in KEY_DOCS {
        let default = defaults
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let default = if default.is_empty() {
            "(empty)".to_string()
        } else {
            format!("`{default}`")
        };
        out.push_str(&format!("| `{key}` | {default} | {doc} |\n"));
    }
    for key in SECRET_KEYS {
        out.push_str(&format!("| `{key}` | (empty) | Secret; never printed. |\n"));
    }
    out
}

/// Every leaf of the default configuration as (dotted key, value).
pub fn default_values() -> Vec<(String, String)> {
    let value = serde_yaml_ng::to_value(Config::default()).expect("defaults serialize");
    let mut out = Vec::new();
    flatten("", &value, &mut out);
    out
}

fn flatten(prefix: &str, value: &serde_yaml_ng::Value, out: &mut Vec<(String, String)>) {
    use serde_yaml_ng::Value;
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let k = k.as_str().unwrap_or_default();
                let key = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        // Lists print as one compact value so each key keeps one row.
        Value::Sequence(items) => {
            let entries: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Value::Mapping(map) => map
                        .values()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => serde_yaml_ng::to_string(other).unwrap_or_default(),
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => serde_yaml_ng::to_string(other).unwrap_or_default(),
                })
                .collect();
            out.push((prefix.to_string(), entries.join(", ")));
        }
        _ => out.push((prefix.to_string(), String::new())),
    }
}
