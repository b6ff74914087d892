//! A scan of protobuf bytes, before decoding, for what would make prost recurse without bound.
//!
//! prost's recursion limit (100 messages) is lifted, since OTLP values nest deeper than that
//! allows (see `ingest::nesting`). Recursion is then bounded by what a body holds, so every
//! body from the network is scanned first, by a loop with its own stack: nested messages are
//! followed as far as a [`Schema`] says they lead, and group fields, which prost skips by
//! recursion and no proto3 message has, are refused wherever they appear.

use std::marker::PhantomData;

use bytes::Buf;

/// The messages of one request type that a scan descends into.
pub trait Schema: Copy {
    /// The message that length-delimited field `number` of `self` holds, if it is one.
    fn field(self, number: u64) -> Option<Self>;
    /// Whether this message counts towards the depth bound.
    fn counts(self) -> bool;
}

/// Why a body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Messages that count were nested past the bound.
    TooDeep,
    /// A group field (proto2 only) appeared.
    Groups,
}

/// Scans `bytes` as a `root` message. Counting messages may nest `max_depth` deep. A body
/// that is not well formed passes if nothing in the part that could be read was refused: the
/// decoder then says what is wrong with it.
pub fn check<S: Schema>(bytes: &[u8], root: S, max_depth: usize) -> Result<(), Refused> {
    // Open messages as (kind, end offset, counting messages open).
    let mut open = vec![(root, bytes.len(), usize::from(root.counts()))];
    let mut at = 0;
    while let Some(&(message, end, depth)) = open.last() {
        if at >= end {
            open.pop();
            continue;
        }
        let Some(key) = varint(bytes, &mut at) else {
            return Ok(());
        };
        let length = match key & 7 {
            0 => match varint(bytes, &mut at) {
                Some(_) => continue,
                None => return Ok(()),
            },
            1 => 8,
            5 => 4,
            2 => match varint(bytes, &mut at) {
                Some(length) => length,
                None => return Ok(()),
            },
            3 | 4 => return Err(Refused::Groups),
            _ => return Ok(()),
        };
        let Some(field_end) = usize::try_from(length)
            .ok()
            .and_then(|length| at.checked_add(length))
            .filter(|&field_end| field_end <= end)
        else {
            return Ok(());
        };
        match message.field(key >> 3).filter(|_| key & 7 == 2) {
            Some(child) => {
                let depth = depth + usize::from(child.counts());
                if depth > max_depth {
                    return Err(Refused::TooDeep);
                }
                open.push((child, field_end, depth));
            }
            None => at = field_end,
        }
    }
    Ok(())
}

/// Reads a base-128 varint at `at`, moving past it.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A tonic codec that scans each request with [`check`] before prost decodes it. A request
/// that is refused or cannot be decoded is `INVALID_ARGUMENT`: sending it again cannot help.
pub struct CheckedCodec<S, Decode, Encode> {
    root: S,
    max_depth: usize,
    /// What to tell the client about a refused request.
    explain: fn(Refused) -> String,
    types: PhantomData<fn() -> (Decode, Encode)>,
}

impl<S, Decode, Encode> CheckedCodec<S, Decode, Encode> {
    pub fn new(root: S, max_depth: usize, explain: fn(Refused) -> String) -> Self {
        Self {
            root,
            max_depth,
            explain,
            types: PhantomData,
        }
    }
}

impl<S: Copy, Decode, Encode> Clone for CheckedCodec<S, Decode, Encode> {
    fn clone(&self) -> Self {
        Self::new(self.root, self.max_depth, self.explain)
    }
}

impl<S, Decode, Encode> tonic::codec::Codec for CheckedCodec<S, Decode, Encode>
where
    S: Schema + Send + 'static,
    Decode: prost::Message + Default + Send + 'static,
    Encode: prost::Message + Send + 'static,
{
    type Encode = Encode;
    type Decode = Decode;
    type Encoder = tonic_prost::ProstEncoder<Encode>;
    type Decoder = Self;

    fn encoder(&mut self) -> Self::Encoder {
        Default::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.clone()
    }
}

impl<S, Decode, Encode> tonic::codec::Decoder for CheckedCodec<S, Decode, Encode>
where
    S: Schema,
    Decode: prost::Message + Default,
{
    type Item = Decode;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        body: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Decode>, tonic::Status> {
        let bytes = body.copy_to_bytes(body.remaining());
        check(&bytes, self.root, self.max_depth)
            .map_err(|refused| tonic::Status::invalid_argument((self.explain)(refused)))?;
        Decode::decode(bytes).map(Some).map_err(|e| {
            tonic::Status::invalid_argument(format!("failed to decode Protobuf message: {e}"))
        })
    }
}
