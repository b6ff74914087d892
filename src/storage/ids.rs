//! Trace and span identifiers as stored: trace ids are always 16 bytes, span ids 8.

use std::fmt;
use std::str::FromStr;

/// A 16-byte trace id. Shorter ids (some Jaeger and Zipkin clients send 8 bytes) are left-padded
/// with zeros; longer ones keep their last 16 bytes, as Tempo does.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

impl TraceId {
    /// Pads or trims raw OTLP bytes to 16. Returns `None` for an empty or all-zero id, which
    /// OTLP defines as invalid.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut id = [0u8; 16];
        let tail = &bytes[bytes.len().saturating_sub(16)..];
        id[16 - tail.len()..].copy_from_slice(tail);
        (id != [0; 16]).then_some(Self(id))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// Why a trace id in text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceIdError {
    #[error("trace id is empty")]
    Empty,
    #[error("trace id {0:?} is longer than 32 hex characters")]
    TooLong(String),
    #[error("trace id {0:?} is not hexadecimal")]
    NotHex(String),
    #[error("trace id {0:?} is all zeros")]
    Zero(String),
}

impl FromStr for TraceId {
    type Err = TraceIdError;

    /// 1 to 32 hex digits in any case, left-padded with zeros, as Tempo's HTTP API accepts them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(TraceIdError::Empty);
        }
        if text.len() > 32 {
            return Err(TraceIdError::TooLong(text.to_string()));
        }
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TraceIdError::NotHex(text.to_string()));
        }
        let padded = format!("{text:0>32}");
        let mut id = [0u8; 16];
        hex::decode_to_slice(&padded, &mut id).map_err(|_| TraceIdError::NotHex(text.into()))?;
        if id == [0; 16] {
            return Err(TraceIdError::Zero(text.to_string()));
        }
        Ok(Self(id))
    }
}

impl serde::Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for TraceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
