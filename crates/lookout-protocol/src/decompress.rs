//! Request-body decompression for every encoding Sentry SDKs send, with a hard output cap.
//!
//! `gzip` (sentry-python's default), `br` (sentry-python when the `brotli` module is importable),
//! `deflate` as a zlib stream or raw (both occur in the wild), `zstd`, and identity (also spelled
//! `""` or `UTF-8` by some old SDKs). The cap is checked while inflating, so a decompression bomb
//! stops at the cap instead of exhausting memory.
//!
//! [`decode_budgeted`] also asks a caller-supplied budget before each allocation, so a server can
//! bound the memory all requests decompress into at once; [`decode_first_line`] inflates only as
//! far as the first newline, so an envelope header (which may carry the DSN key) is read without
//! inflating the rest of a possible bomb.

use std::io::Read;

use crate::ProtocolError;

/// How much output a decoder produces per read; also the smallest budget reservation.
const CHUNK: usize = 64 * 1024;

/// Decodes `body` according to a `Content-Encoding` value, producing at most `cap` bytes.
pub fn decode(encoding: Option<&str>, body: &[u8], cap: usize) -> Result<Vec<u8>, ProtocolError> {
    decode_budgeted(encoding, body, cap, &mut |_| true)
}

/// Like [`decode`], calling `reserve(bytes)` before the output buffer is reallocated to `bytes`
/// (it doubles, never past `cap`); when it answers `false` decoding stops with
/// [`ProtocolError::OverBudget`]. What is reserved is never less than what is live at once.
pub fn decode_budgeted(
    encoding: Option<&str>,
    body: &[u8],
    cap: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, ProtocolError> {
    let stop = |_: &[u8]| false;
    with_decoder(encoding, body, |r| read_capped(r, cap, reserve, &stop))
}

/// Inflates `body` only up to and including its first newline (an envelope header), producing
/// at most `cap` bytes; [`ProtocolError::TooLarge`] if no newline comes within `cap` bytes and
/// the body goes on. Cheap on a bomb: it stops after the first line.
pub fn decode_first_line(
    encoding: Option<&str>,
    body: &[u8],
    cap: usize,
) -> Result<Vec<u8>, ProtocolError> {
    let stop = |chunk: &[u8]| chunk.contains(&b'\n');
    let mut out = with_decoder(encoding, body, |r| {
        read_capped(r, cap, &mut |_| true, &stop)
    })?;
    if let Some(i) = out.iter().position(|b| *b == b'\n') {
        out.truncate(i);
    }
    Ok(out)
}

/// Runs `read` on the decoder for `encoding`.
fn with_decoder(
    encoding: Option<&str>,
    body: &[u8],
    read: impl FnOnce(&mut dyn Read) -> Result<Vec<u8>, ProtocolError>,
) -> Result<Vec<u8>, ProtocolError> {
    let enc = encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match enc.as_str() {
        "" | "identity" | "utf-8" => read(&mut { body }),
        "gzip" | "x-gzip" => read(&mut flate2::read::MultiGzDecoder::new(body)),
        "deflate" => {
            // A zlib header is two bytes whose big-endian value is a multiple of 31 with method 8.
            let zlib = matches!(body, [a, b, ..] if a & 0x0f == 8 && (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0);
            if zlib {
                read(&mut flate2::read::ZlibDecoder::new(body))
            } else {
                read(&mut flate2::read::DeflateDecoder::new(body))
            }
        }
        "br" => read(&mut brotli::Decompressor::new(body, 4096)),
        "zstd" => {
            let mut dec = zstd::stream::read::Decoder::new(body)
                .map_err(|e| ProtocolError::Malformed(format!("bad zstd body: {e}")))?;
            read(&mut dec)
        }
        other => Err(ProtocolError::UnsupportedEncoding(other.to_string())),
    }
}

fn too_large(cap: usize) -> ProtocolError {
    ProtocolError::TooLarge(format!("body exceeds {cap} bytes after decompression"))
}

/// Reads a decoder to the end (or until `stop` is true of a chunk just read), failing once more
/// than `cap` bytes come out or `reserve` refuses the next growth of the buffer.
fn read_capped(
    reader: &mut dyn Read,
    cap: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
    stop: &dyn Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, ProtocolError> {
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() == out.capacity() {
            if out.len() > cap {
                return Err(too_large(cap));
            }
            // Growing moves the data to a new buffer while the old one is still live, so the
            // whole new capacity is reserved each time and nothing is given back until the end:
            // with doubling that over-counts the peak (old + new) by at most a third.
            // One byte past the cap tells "exactly cap" from "more than cap".
            let grow_to = (out.capacity() * 2).max(CHUNK).min(cap.saturating_add(1));
            if !reserve(grow_to) {
                return Err(ProtocolError::OverBudget);
            }
            out.reserve_exact(grow_to - out.len());
        }
        // Read into a zeroed window of at most one chunk: zeroing all spare capacity on every
        // read would be quadratic, since decoders hand out a few KiB per call.
        let start = out.len();
        let free = (out.capacity() - start).min(CHUNK);
        out.resize(start + free, 0);
        let n = match reader.read(out.get_mut(start..).unwrap_or_default()) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => {
                return Err(ProtocolError::Malformed(format!(
                    "cannot decompress body: {e}"
                )))
            }
        };
        out.truncate(start + n);
        if out.len() > cap {
            return Err(too_large(cap));
        }
        if n == 0 || stop(out.get(start..).unwrap_or_default()) {
            return Ok(out);
        }
    }
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
        assert_eq!(decode(None, TEXT, TEXT.len()).unwrap(), TEXT);
    }

    #[test]
    fn the_budget_is_asked_before_every_allocation() {
        let big = vec![b'a'; 1 << 20];
        let mut reserved = 0;
        let out = decode_budgeted(Some("gzip"), &gz(&big), 2 << 20, &mut |n| {
            reserved += n;
            true
        })
        .unwrap();
        assert_eq!(out, big);
        assert!(
            reserved >= out.capacity(),
            "{reserved} < {}",
            out.capacity()
        );
        let mut left = 256 * 1024;
        let refused = decode_budgeted(Some("gzip"), &gz(&big), 2 << 20, &mut |n| {
            let ok = n <= left;
            left = left.saturating_sub(n);
            ok
        });
        assert_eq!(refused, Err(ProtocolError::OverBudget));
    }

    #[test]
    fn the_first_line_of_a_bomb_is_read_without_the_rest() {
        let mut body = b"{\"dsn\":\"http://k@h/1\"}\n".to_vec();
        body.extend(vec![b'a'; 50 << 20]);
        let line = decode_first_line(Some("gzip"), &gz(&body), 64 * 1024).unwrap();
        assert_eq!(line, b"{\"dsn\":\"http://k@h/1\"}");
        let no_newline = gz(&vec![b'a'; 10 << 20]);
        assert!(matches!(
            decode_first_line(Some("gzip"), &no_newline, 64 * 1024),
            Err(ProtocolError::TooLarge(_))
        ));
        assert_eq!(decode_first_line(None, b"{}", 10).unwrap(), b"{}");
    }
}
