//! Named points on the write path where the process can be made to die, so that tests can
//! prove recovery from a crash at each step (`TRACEFUSION_CRASH_AT=<name>` aborts the process
//! the first time it reaches `<name>`, as a `kill -9` there would). Unset, each point is one
//! load of a cached flag.
//!
//! The points, in the order a block cut passes them: `cut:after-rotate`, `cut:after-mark`,
//! `block:after-data`, `block:before-meta`, `cut:after-meta`, `cut:after-truncate`.

use std::sync::OnceLock;

/// The environment variable naming the point to abort at.
pub const ENV: &str = "TRACEFUSION_CRASH_AT";

/// Aborts the process if `TRACEFUSION_CRASH_AT` names `point`.
pub fn reached(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()));
    if at.as_deref() == Some(point) {
        eprintln!("{ENV}={point}: aborting here, as a crash would");
        std::process::abort();
    }
}
