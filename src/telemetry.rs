//! Process-wide logging with `tracing`: level and format from the config, `RUST_LOG` wins.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. Logs go to stderr so that stdout stays free for command
/// output (`tracefusion query … > result.json`). Calling it twice is harmless.
pub fn init_logging(level: LogLevel, format: LogFormat) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(level.as_str()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Logfmt => builder.try_init(),
    };
    // Already installed (a second call in the same process): keep the first.
    let _ = result;
}
