//! `tracefusion query` (a TraceQL search over the configured store or a running server) and
//! `tracefusion explain` (the plans DataFusion runs for a query).

use datafusion::physical_plan::displayable;
use std::process::ExitCode;

use super::{ConfigArgs, fail, runtime, store_sources};
use crate::exec::search::{AttrValue, SearchOptions, SearchResult};

pub fn explain(config: &ConfigArgs, tenant: &str, text: &str) -> ExitCode {
    let query = match crate::traceql::compile(text) {
        Ok(q) => q,
        Err(e) => return fail(&e.render(text)),
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async {
        let source = store_sources(config).await?.session(tenant)?;
        let plan = crate::exec::search::plan(&source, &query, &SearchOptions::default()).await?;
        let state = source.ctx.state();
        let optimized = state.optimize(&plan.plan)?;
        let physical = state.create_physical_plan(&plan.plan).await?;
        println!("Logical plan:\n{}", optimized.display_indent());
        println!(
            "\nPhysical plan:\n{}",
            displayable(physical.as_ref()).indent(true)
        );
        Ok::<_, anyhow::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e}")),
    }
}

pub struct QueryArgs<'a> {
    pub tenant: &'a str,
    pub text: &'a str,
    pub options: SearchOptions,
    pub json: bool,
    pub server: Option<&'a str>,
}

pub fn query(config: &ConfigArgs, args: QueryArgs<'_>) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if let Some(server) = args.server {
        return runtime.block_on(query_server(server, &args));
    }
    let query = match crate::traceql::compile(args.text) {
        Ok(q) => q,
        Err(e) => return fail(&e.render(args.text)),
    };
    let result = runtime.block_on(async {
        let sources = store_sources(config).await?;
        let source = sources.session(args.tenant)?;
        let result = crate::exec::search::search(&source, &query, &args.options).await?;
        Ok::<_, anyhow::Error>(result)
    });
    match result {
        Ok(result) => {
            if args.json {
                let response = crate::api::search::search_response(&result);
                match serde_json::to_string(&response) {
                    Ok(text) => println!("{text}"),
                    Err(e) => return fail(&format!("encoding the result: {e}")),
                }
            } else {
                print_table(&result);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{e}")),
    }
}

/// Asks a running server's `/api/search` and prints its JSON.
async fn query_server(server: &str, args: &QueryArgs<'_>) -> ExitCode {
    let url = format!("{}/api/search", server.trim_end_matches('/'));
    let mut params = vec![
        ("q", args.text.to_string()),
        ("limit", args.options.limit.to_string()),
        ("spss", args.options.spss.to_string()),
    ];
    if let (Some(start), Some(end)) = (args.options.start, args.options.end) {
        params.push(("start", (start / 1_000_000_000).to_string()));
        params.push(("end", (end / 1_000_000_000).to_string()));
    }
    let response = reqwest::Client::new()
        .get(&url)
        .query(&params)
        .header("X-Scope-OrgID", args.tenant)
        .header("Accept", "application/json")
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return fail(&format!("{url}: {e}")),
    };
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return fail(&format!("{url}: {status}: {body}"));
    }
    println!("{body}");
    ExitCode::SUCCESS
}

fn show(v: &AttrValue) -> String {
    match v {
        AttrValue::String(s) => s.clone(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Float(f) => f.to_string(),
        AttrValue::Bool(b) => b.to_string(),
    }
}

fn print_table(result: &SearchResult) {
    println!(
        "{:<32}  {:<20}  {:<28}  {:<30}  {:>10}  {:>7}",
        "trace id", "root service", "root name", "start", "duration", "matched"
    );
    for t in &result.traces {
        let start = chrono::DateTime::from_timestamp_nanos(t.start_time_unix_nano);
        let matched: usize = t.span_sets.iter().map(|s| s.matched).sum();
        println!(
            "{:<32}  {:<20}  {:<28}  {:<30}  {:>8}ms  {:>7}",
            hex::encode(t.trace_id.0),
            t.root_service_name.as_deref().unwrap_or("-"),
            t.root_trace_name.as_deref().unwrap_or("-"),
            start.to_rfc3339(),
            t.duration_nanos / 1_000_000,
            matched
        );
        for set in &t.span_sets {
            if !set.attributes.is_empty() {
                let attrs: Vec<String> = set
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={}", show(v)))
                    .collect();
                println!("    spanset {}", attrs.join(" "));
            }
            for span in &set.spans {
                let attrs: Vec<String> = span
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={}", show(v)))
                    .collect();
                println!(
                    "    {}  {:<30}  {:>10}ns  {}",
                    hex::encode(span.span_id),
                    span.name,
                    span.duration_nanos,
                    attrs.join(" ")
                );
            }
        }
    }
    println!(
        "{} traces; {} spans and {} bytes read",
        result.traces.len(),
        result.stats.inspected_spans,
        result.stats.inspected_bytes
    );
}
