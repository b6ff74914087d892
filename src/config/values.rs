//! Value types of the configuration file that need more than a plain scalar: durations,
//! byte sizes and `host:port` endpoints. Each one deserializes from the spelling a Tempo
//! user writes and says what it expected when the value does not fit.

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written like Go's `time.Duration` strings: `30s`, `5m`, `1h30m`, `336h`, `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }
}

impl From<Duration> for StdDuration {
    fn from(value: Duration) -> Self {
        value.0
    }
}

impl fmt::Display for Duration {
    /// Prints the shortest exact form with the largest units first (`1h30m`, `336h`, `500ms`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::go_duration::write(f, self.0.as_nanos())
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed == "0" {
            return Ok(Self(StdDuration::ZERO));
        }
        humantime::parse_duration(trimmed)
            .map(Self)
            .map_err(|e| e.to_string())
    }
}

const DURATION_EXPECTED: &str = "a duration such as 10s, 5m, 1h30m or 336h";

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &DURATION_EXPECTED))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                // A bare number is ambiguous (Go reads nanoseconds); only zero is unambiguous.
                if v == 0 {
                    Ok(Duration(StdDuration::ZERO))
                } else {
                    Err(E::invalid_value(
                        Unexpected::Unsigned(v),
                        &DURATION_EXPECTED,
                    ))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::invalid_value(Unexpected::Signed(v), &DURATION_EXPECTED))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::invalid_value(Unexpected::Float(v), &DURATION_EXPECTED))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A size in bytes: a plain integer (as Tempo writes `max_block_bytes: 524288000`) or a string
/// with a unit (`500MiB`, `1GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (suffix, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{suffix}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

const BYTES_EXPECTED: &str = "a size in bytes such as 524288000, 500MiB or 1GB";

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(BYTES_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &BYTES_EXPECTED))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                // YAML 1.1 (Tempo's parser) reads `1_000_000` as an integer; YAML 1.2 does not.
                if let Ok(n) = v.trim().replace('_', "").parse::<u64>() {
                    return Ok(ByteSize(n));
                }
                v.trim()
                    .parse::<bytesize::ByteSize>()
                    .map(|b| ByteSize(b.as_u64()))
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &BYTES_EXPECTED))
            }
        }
        deserializer.deserialize_any(BytesVisitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A listen endpoint `host:port` as OpenTelemetry receivers write it (`0.0.0.0:4317`,
/// `localhost:4318`, `[::]:4317`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_string(),
            port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s.trim().rsplit_once(':').ok_or(())?;
        let port = port.parse::<u16>().map_err(|_| ())?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.contains(char::is_whitespace) {
            return Err(());
        }
        Ok(Endpoint::new(host, port))
    }
}

const ENDPOINT_EXPECTED: &str = "an endpoint host:port such as 0.0.0.0:4317";

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| de::Error::invalid_value(Unexpected::Str(&text), &ENDPOINT_EXPECTED))
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
