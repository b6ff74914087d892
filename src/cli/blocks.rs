//! `tracefusion blocks list|inspect|trace` and `tracefusion generate`: tools over a configured
//! block store, in the spirit of tempo-cli.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::{ConfigArgs, fail, runtime};
use crate::config::Config;
use crate::storage::{BlockOptions, Blocklist, TraceId, TraceReader, inspect, open_store};
use crate::synth::{Generator, GeneratorConfig};

#[derive(Debug, Subcommand)]
pub enum BlocksCommand {
    /// List a tenant's blocks with their metas, newest first.
    List {
        /// Print the metas as JSON, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Show a block's meta, schema, row groups and bytes per column.
    Inspect {
        /// Block id (a UUID from `blocks list`).
        block: uuid::Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Find a trace in the blocks and print it as OTLP/JSON.
    Trace {
        /// Trace id: 1–32 hex digits.
        trace_id: String,
    },
}

/// Output format of `generate`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OtlpFormat {
    /// One OTLP/JSON `ExportTraceServiceRequest` per line.
    Json,
    /// OTLP protobuf `ExportTraceServiceRequest`s, each prefixed with its varint length.
    Proto,
}

fn load(config: &ConfigArgs) -> Result<Config, ExitCode> {
    config.load().map(|l| l.config).map_err(|e| fail(&e))
}

pub fn blocks(config: &ConfigArgs, tenant: &str, command: BlocksCommand) -> ExitCode {
    let config = match load(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async {
        let store = open_store(&config.storage.trace)?;
        let blocklist = Arc::new(Blocklist::new(store.clone()));
        blocklist.poll().await?;
        let blocks = blocklist.blocks(tenant);
        let mut out = std::io::stdout().lock();
        match command {
            BlocksCommand::List { json } => {
                if json {
                    for meta in blocks.iter() {
                        writeln!(out, "{}", serde_json::to_string(meta.as_ref())?)?;
                    }
                } else {
                    writeln!(
                        out,
                        "{:<36}  {:<20}  {:<20}  {:>8}  {:>9}  {:>10}  {:>3}  {:>3}",
                        "block", "start", "end", "traces", "spans", "bytes", "rgs", "lvl"
                    )?;
                    for m in blocks.iter() {
                        writeln!(
                            out,
                            "{:<36}  {:<20}  {:<20}  {:>8}  {:>9}  {:>10}  {:>3}  {:>3}",
                            m.block_id,
                            m.start_time.format("%Y-%m-%dT%H:%M:%SZ"),
                            m.end_time.format("%Y-%m-%dT%H:%M:%SZ"),
                            m.total_traces,
                            m.total_spans,
                            m.size,
                            m.row_groups.len(),
                            m.compaction_level
                        )?;
                    }
                    writeln!(out, "{} blocks of tenant {tenant}", blocks.len())?;
                }
            }
            BlocksCommand::Inspect { block, json } => {
                let meta = blocks
                    .iter()
                    .find(|m| m.block_id == block)
                    .ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no block {block}"))?;
                let report = inspect::inspect_block(store.clone(), meta).await?;
                if json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
                } else {
                    print_report(&mut out, &report)?;
                }
            }
            BlocksCommand::Trace { trace_id } => {
                let id: TraceId = trace_id.parse()?;
                let reader = TraceReader::new(store.clone(), blocklist.clone());
                let before = store.counters();
                let found = reader.find_trace(tenant, id, None).await?;
                let read = store.counters() - before;
                if found.resource_spans.is_empty() {
                    anyhow::bail!("trace {id} not found in {} blocks of tenant {tenant}", blocks.len());
                }
                let request = ExportTraceServiceRequest {
                    resource_spans: found.resource_spans.clone(),
                };
                writeln!(out, "{}", serde_json::to_string_pretty(&request)?)?;
                eprintln!(
                    "{} spans; blocks: {} listed, {} in id/time range, {} past bloom, {} with the trace; {} row groups, {} pages; {} GETs, {} bytes",
                    found.span_count(),
                    found.stats.blocks,
                    found.stats.blocks_in_range,
                    found.stats.blocks_past_bloom,
                    found.stats.blocks_with_trace,
                    found.stats.row_groups_read,
                    found.stats.pages_read,
                    read.get_requests,
                    read.get_bytes,
                );
            }
        }
        Ok::<_, anyhow::Error>(())
    });
    finish(result)
}

/// Success, or the error; a closed stdout (`| head`) is not an error.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => fail(&format!("{error:#}")),
    }
}

fn print_report(out: &mut impl Write, report: &inspect::BlockReport) -> std::io::Result<()> {
    let m = &report.meta;
    writeln!(out, "block      {}", m.block_id)?;
    writeln!(out, "tenant     {}", m.tenant_id)?;
    writeln!(out, "format     {}", m.format)?;
    writeln!(out, "time       {} .. {}", m.start_time, m.end_time)?;
    writeln!(
        out,
        "traces     {}   spans {}",
        m.total_traces, m.total_spans
    )?;
    writeln!(
        out,
        "bytes      {} (footer and page index {}, bloom {}), {:.1} bytes/span",
        m.size,
        m.footer_size,
        m.bloom_size,
        m.size as f64 / m.total_spans.max(1) as f64
    )?;
    writeln!(out, "trace ids  {} .. {}", m.min_id, m.max_id)?;
    writeln!(out, "\nrow groups")?;
    for (i, (rg, rg_meta)) in report.row_groups.iter().zip(&m.row_groups).enumerate() {
        writeln!(
            out,
            "  {i:>3}  {:>8} rows  {:>6} traces  {:>10} bytes ({} uncompressed)  traces start {} .. {}",
            rg.rows,
            rg_meta.traces,
            rg.compressed_bytes,
            rg.uncompressed_bytes,
            rg_meta.start_time.format("%H:%M:%S%.3f"),
            rg_meta
                .last_trace_start
                .map_or_else(|| "?".to_string(), |t| t.format("%H:%M:%S%.3f").to_string()),
        )?;
    }
    writeln!(out, "\nbytes per column group")?;
    for (group, bytes) in &report.group_sizes {
        writeln!(
            out,
            "  {group:<22} {bytes:>10}  {:>6.1} B/span",
            *bytes as f64 / m.total_spans.max(1) as f64
        )?;
    }
    writeln!(out, "\ncolumns (compressed / uncompressed bytes)")?;
    for c in &report.column_sizes {
        writeln!(
            out,
            "  {:<48} {:>10} {:>10}",
            c.column, c.compressed_bytes, c.uncompressed_bytes
        )?;
    }
    writeln!(out, "\nschema")?;
    for (name, data_type) in &report.columns {
        writeln!(out, "  {name:<32} {data_type}")?;
    }
    Ok(())
}

/// Arguments of `tracefusion generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// How many traces.
    #[arg(long, default_value_t = 1000)]
    pub traces: usize,
    /// Seed: the same seed always generates the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write OTLP to FILE instead of blocks to the configured store.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Format of --out.
    #[arg(long, value_enum, default_value_t = OtlpFormat::Json)]
    pub format: OtlpFormat,
    /// Traces per OTLP request (--out) or per block.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Tenant of written blocks.
    #[arg(long, default_value = "single-tenant")]
    pub tenant: String,
}

pub fn generate(args: GenerateArgs) -> ExitCode {
    let config = match load(&args.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut generator = Generator::new(GeneratorConfig {
        seed: args.seed,
        ..GeneratorConfig::default()
    });
    let result = match &args.out {
        Some(path) => write_otlp(&mut generator, path, &args),
        None => runtime().map_err(anyhow::Error::from).and_then(|rt| {
            rt.block_on(async {
                let store = open_store(&config.storage.trace)?;
                let options = BlockOptions::from_config(&config.storage.trace.block);
                let metas = crate::synth::write_blocks(
                    &mut generator,
                    store,
                    &args.tenant,
                    &options,
                    args.traces,
                    args.batch,
                    |meta| {
                        eprintln!(
                            "block {}: {} traces, {} spans, {} bytes",
                            meta.block_id, meta.total_traces, meta.total_spans, meta.size
                        )
                    },
                )
                .await?;
                eprintln!("wrote {} blocks for tenant {}", metas.len(), args.tenant);
                Ok(())
            })
        }),
    };
    finish(result)
}

fn write_otlp(
    generator: &mut Generator,
    path: &PathBuf,
    args: &GenerateArgs,
) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut remaining = args.traces;
    while remaining > 0 {
        let count = remaining.min(args.batch.max(1));
        remaining -= count;
        let request = ExportTraceServiceRequest {
            resource_spans: generator.by_ref().take(count).flatten().collect(),
        };
        match args.format {
            OtlpFormat::Json => {
                serde_json::to_writer(&mut out, &request)?;
                out.write_all(b"\n")?;
            }
            OtlpFormat::Proto => out.write_all(&request.encode_length_delimited_to_vec())?,
        }
    }
    out.flush()?;
    Ok(())
}
