//! `tracefusion sql`: SQL over a tenant's span table (`spans`) in the configured store.

use std::process::ExitCode;

use super::{ConfigArgs, fail, runtime, store_sources};

pub fn sql(config: &ConfigArgs, tenant: &str, query: &str) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async {
        let ctx = store_sources(config).await?.session(tenant)?;
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
