//! Durations as Go prints a `time.Duration`, largest units first (`1h30m`, `1s500ms`, `0s`):
//! how Tempo's configuration, TraceQL duration literals and search result values spell them.

use std::fmt;

/// A non-negative duration of `nanos` nanoseconds.
pub fn write(f: &mut impl fmt::Write, mut nanos: u128) -> fmt::Result {
    if nanos == 0 {
        return f.write_str("0s");
    }
    const UNITS: [(&str, u128); 6] = [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    for (suffix, size) in UNITS {
        if nanos >= size {
            write!(f, "{}{suffix}", nanos / size)?;
            nanos %= size;
        }
    }
    Ok(())
}

/// `nanos` rounded to whole nanoseconds, with a `-` when negative.
pub fn format(nanos: f64) -> String {
    let mut out = String::new();
    if nanos < 0.0 {
        out.push('-');
    }
    // Writing to a String cannot fail.
    let _ = write(&mut out, nanos.abs().round() as u128);
    out
}
