//! Request-body decompression for every encoding Sentry SDKs send, with a hard output cap.
//!
//! `gzip` (sentry-python's default), `br` (sentry-python when the `brotli` module is importable),
//! `deflate` as a zlib stream or raw (both occur in the wild), `zstd`, and identity (also spelled
//! `""` or `UTF-8` by some old SDKs). The cap is checked while inflating, so a decompression bomb
//! stops at the cap instead of exhausting memory.

use std::io::Read;

use crate::ProtocolError;

/// Decodes `body` according to a `Content-Encoding` value, producing at most `cap` bytes.
pub fn decode(encoding: Option<&str>, body: &[u8], cap: usize) -> Result<Vec<u8>, ProtocolError> {
    let enc = encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match enc.as_str() {
        "" | "identity" | "utf-8" => {
            if body.len() > cap {
                return Err(too_large(cap));
            }
            Ok(body.to_vec())
        }
        "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(body), cap),
        "deflate" => {
            // A zlib header is two bytes whose big-endian value is a multiple of 31 with method 8.
            let zlib = matches!(body, [a, b, ..] if a & 0x0f == 8 && (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0);
            if zlib {
                read_capped(flate2::read::ZlibDecoder::new(body), cap)
            } else {
                read_capped(flate2::read::DeflateDecoder::new(body), cap)
            }
        }
        "br" => read_capped(brotli::Decompressor::new(body, 4096), cap),
        "zstd" => {
            let dec = zstd::stream::read::Decoder::new(body)
                .map_err(|e| ProtocolError::Malformed(format!("bad zstd body: {e}")))?;
            read_capped(dec, cap)
        }
        other => Err(ProtocolError::UnsupportedEncoding(other.to_string())),
    }
}

fn too_large(cap: usize) -> ProtocolError {
    ProtocolError::TooLarge(format!("body exceeds {cap} bytes after decompression"))
}

/// Reads a decoder to the end, failing once more than `cap` bytes come out.
fn read_capped(reader: impl Read, cap: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| ProtocolError::Malformed(format!("cannot decompress body: {e}")))?;
    if out.len() > cap {
        return Err(too_large(cap));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"{\"event_id\":\"abc\"}\n{\"type\":\"event\"}\n{}";

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_sdk_encoding_round_trips() {
        assert_eq!(decode(Some("gzip"), &gz(TEXT), 1 << 20).unwrap(), TEXT);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(TEXT).unwrap();
        assert_eq!(
            decode(Some("deflate"), &z.finish().unwrap(), 1 << 20).unwrap(),
            TEXT
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(TEXT).unwrap();
        assert_eq!(
            decode(Some("Deflate"), &raw.finish().unwrap(), 1 << 20).unwrap(),
            TEXT
        );
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 4, 22)
            .write_all(TEXT)
            .unwrap();
        assert_eq!(decode(Some("br"), &br, 1 << 20).unwrap(), TEXT);
        let zs = zstd::stream::encode_all(TEXT, 3).unwrap();
        assert_eq!(decode(Some("zstd"), &zs, 1 << 20).unwrap(), TEXT);
        for identity in [None, Some(""), Some("identity"), Some("UTF-8")] {
            assert_eq!(decode(identity, TEXT, 1 << 20).unwrap(), TEXT);
        }
    }

    #[test]
    fn bombs_stop_at_the_cap_and_garbage_is_malformed() {
        let bomb = gz(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 20_000);
        assert!(matches!(
            decode(Some("gzip"), &bomb, 1 << 20),
            Err(ProtocolError::TooLarge(_))
        ));
        let truncated = &gz(TEXT)[..10];
        assert!(matches!(
            decode(Some("gzip"), truncated, 1 << 20),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            decode(Some("br"), b"not brotli at all", 1 << 20),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            decode(Some("compress"), TEXT, 1 << 20),
            Err(ProtocolError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decode(None, TEXT, 3),
            Err(ProtocolError::TooLarge(_))
        ));
    }
}
