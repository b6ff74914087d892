//! `tracefusion sql`: SQL over a tenant's span table (`spans`) in the configured store.

use std::process::ExitCode;
use std::sync::Arc;

use super::{ConfigArgs, fail};
use crate::exec::session::span_session;
use crate::storage::{Blocklist, open_store};

pub fn sql(config: &ConfigArgs, tenant: &str, query: &str) -> ExitCode {
    let config = match config.load() {
        Ok(loaded) => loaded.config,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async {
        let store = open_store(&config.storage.trace)?;
        let blocklist = Arc::new(Blocklist::new(store.clone()));
        blocklist.poll().await?;
        let ctx = span_session(
            store,
            blocklist,
            tenant,
            &config.storage.trace.block.parquet_dedicated_columns,
        )?;
        let batches = ctx.sql(query).await?.collect().await?;
        println!(
            "{}",
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)?
        );
        Ok::<_, anyhow::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e}")),
    }
}
