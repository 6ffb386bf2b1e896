//! The one versioned value codec of the project: `[FORMAT_VERSION] ++ bincode(value)`. The store
//! writes every value with it, and every payload that crosses a node goes through it too
//! (`mgrpo_actors::wire`), so there is one format to version.
use serde::{Serialize, de::DeserializeOwned};

/// Version byte written before every value. Bump it when a stored type changes shape, and
/// teach the store to read the older layout (see `legacy.rs`): [`decode`] itself only takes
/// the current version (two nodes of different builds refuse each other's payloads).
///
/// 2: group records carry the generation of the main rollouts' policy, and each sub call the
/// version and generation of the sub policy that ran it.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest version the store still reads.
pub const OLDEST_READABLE: u8 = 1;

/// Why a stored value could not be read back (an incompatible or corrupt value).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value has no bytes at all.
    #[error("empty value")]
    Empty,
    /// The value was written by a different format version.
    #[error("unsupported format version {0} (this build reads {FORMAT_VERSION})")]
    Version(u8),
    /// bincode could not encode the value.
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// bincode could not decode the bytes.
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// Encodes `value` as `[FORMAT_VERSION] ++ bincode(value)`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    out.extend(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?);
    Ok(out)
}

/// Decodes what [`encode`] wrote; refuses another format version or bytes that do not decode.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match split_version(bytes)? {
        (FORMAT_VERSION, body) => decode_body(body),
        (version, _) => Err(CodecError::Version(version)),
    }
}

/// The version byte and the body of an encoded value.
pub fn split_version(bytes: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    Ok((version, body))
}

/// Decodes a bincode body (no version byte).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, _read) = bincode::serde::decode_from_slice(body, bincode::config::standard())?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refuses_garbage() {
        let v = (7u64, "x".to_string(), vec![1.5f32, -2.0]);
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<(u64, String, Vec<f32>)>(&bytes).unwrap(), v);
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        assert!(matches!(
            decode::<u64>(&[99, 1]),
            Err(CodecError::Version(99))
        ));
        assert!(decode::<(u64, String)>(&[FORMAT_VERSION, 0xff, 0xff]).is_err());
    }
}
