//! `tracefusion sql`: SQL queries (read only) over a tenant's span table (`spans`) in the
//! configured store.

use std::process::ExitCode;

use datafusion::execution::context::SQLOptions;

use super::{ConfigArgs, fail, runtime, store_sources};

pub fn sql(config: &ConfigArgs, tenant: &str, query: &str) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async {
        let ctx = store_sources(config).await?.session(tenant)?.ctx;
        // Queries only: no `COPY … TO`, `CREATE EXTERNAL TABLE` or `SET`, which would write
        // files or reach other stores with this process's rights.
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let batches = ctx
            .sql_with_options(query, read_only)
            .await?
            .collect()
            .await?;
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
