//! Turns an OTLP/HTTP request body into the OTLP message: gzip, size cap after decompression,
//! and protobuf or JSON by content type (OTLP's JSON mapping: hex ids, integer enums, 64-bit
//! integers as strings or numbers — `opentelemetry-proto`'s serde form reads all of them).

use std::io::Read;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Largest request body accepted after decompression (the OTLP specification suggests 64 MiB;
/// a batch of 512 spans is a few hundred KiB, so 16 MiB leaves ample room and bounds memory).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How a body is encoded, from `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a content type names; `None` for anything else (answered 415).
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The content type of the answer, which mirrors the request's.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body was refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Over [`MAX_BODY`] once decompressed: 413.
    #[error("request body exceeds {MAX_BODY} bytes after decompression")]
    TooLarge,
    /// The caller's memory budget refused the decompressed data: 503 with `Retry-After`.
    #[error("the ingest memory budget is spent; retry later")]
    Busy,
    /// A `Content-Encoding` other than gzip or identity: 415.
    #[error("unsupported content encoding {0:?}; use gzip or none")]
    UnsupportedEncoding(String),
    /// The export would translate to more Prometheus samples or label bytes than one export may
    /// (see `prom::MAX_TRANSLATED_BYTES`): 413.
    #[error("{0}")]
    TooMuchToTranslate(String),
    /// Not valid gzip, protobuf or JSON for this signal: 400.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which layer failed ("gzip data", "protobuf", "JSON").
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
}

/// Undoes `Content-Encoding` (gzip or identity) within [`MAX_BODY`].
pub fn decompress(body: &[u8], content_encoding: Option<&str>) -> Result<Vec<u8>, DecodeError> {
    decompress_within(body, content_encoding, &mut |_| true).map(std::borrow::Cow::into_owned)
}

/// Undoes `Content-Encoding` within [`MAX_BODY`], asking `grant` for every chunk of decompressed
/// output before it is allocated: a gzip body is inflated 64 KiB at a time, and a refused grant
/// stops it ([`DecodeError::Busy`]). An identity body is borrowed, not copied.
pub fn decompress_within<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    grant: &mut dyn FnMut(usize) -> bool,
) -> Result<std::borrow::Cow<'a, [u8]>, DecodeError> {
    match content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => {
            if body.len() > MAX_BODY {
                return Err(DecodeError::TooLarge);
            }
            Ok(std::borrow::Cow::Borrowed(body))
        }
        Some("gzip") | Some("x-gzip") => {
            const CHUNK: usize = 64 * 1024;
            let mut reader = flate2::read::MultiGzDecoder::new(body).take(MAX_BODY as u64 + 1);
            let mut out: Vec<u8> = Vec::new();
            loop {
                if !grant(CHUNK) {
                    return Err(DecodeError::Busy);
                }
                let start = out.len();
                out.resize(start + CHUNK, 0);
                let mut filled = start;
                while filled < out.len() {
                    let n =
                        reader
                            .read(&mut out[filled..])
                            .map_err(|e| DecodeError::Malformed {
                                what: "gzip data",
                                detail: e.to_string(),
                            })?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                let done = filled < out.len();
                out.truncate(filled);
                if out.len() > MAX_BODY {
                    return Err(DecodeError::TooLarge);
                }
                if done {
                    return Ok(std::borrow::Cow::Owned(out));
                }
            }
        }
        Some(other) => Err(DecodeError::UnsupportedEncoding(other.to_string())),
    }
}

fn decode<T>(body: &[u8], encoding: Encoding) -> Result<T, DecodeError>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    match encoding {
        Encoding::Protobuf => T::decode(body).map_err(|e| DecodeError::Malformed {
            what: "protobuf",
            detail: e.to_string(),
        }),
        // An empty JSON body is an empty request, as an empty protobuf body is.
        Encoding::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| DecodeError::Malformed {
            what: "JSON",
            detail: e.to_string(),
        }),
    }
}

/// Decodes an `ExportTraceServiceRequest`.
pub fn traces(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, DecodeError> {
    decode(body, encoding)
}

/// Decodes an `ExportMetricsServiceRequest`.
pub fn metrics(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportMetricsServiceRequest, DecodeError> {
    decode(body, encoding)
}

/// Decodes an `ExportLogsServiceRequest`.
pub fn logs(body: &[u8], encoding: Encoding) -> Result<ExportLogsServiceRequest, DecodeError> {
    decode(body, encoding)
}

/// `google.rpc.Status`, the body of an OTLP error answer (only the fields clients read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// gRPC code (3 = INVALID_ARGUMENT, 8 = RESOURCE_EXHAUSTED, 14 = UNAVAILABLE).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An error answer's body in the request's encoding.
pub fn status_body(encoding: Encoding, code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => prost::Message::encode_to_vec(&Status {
            code,
            message: message.to_string(),
        }),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    }
}

/// A success answer's body: `Export*ServiceResponse` with `partial_success` set when something
/// was rejected. The three signals' responses share one layout (field 1: partial success with
/// the rejected count in field 1 and the message in field 2), differing only in the JSON key.
pub fn success_body(encoding: Encoding, signal: Signal, rejected: i64, message: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::{logs, metrics, trace};
    let partial = rejected > 0 || !message.is_empty();
    // JSON: an unset `partial_success` is left out, not sent as null.
    if !partial && encoding == Encoding::Json {
        return b"{}".to_vec();
    }
    match signal {
        Signal::Traces => encode_response(
            encoding,
            &trace::v1::ExportTraceServiceResponse {
                partial_success: partial.then(|| trace::v1::ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message.to_string(),
                }),
            },
        ),
        Signal::Metrics => encode_response(
            encoding,
            &metrics::v1::ExportMetricsServiceResponse {
                partial_success: partial.then(|| metrics::v1::ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message: message.to_string(),
                }),
            },
        ),
        Signal::Logs => encode_response(
            encoding,
            &logs::v1::ExportLogsServiceResponse {
                partial_success: partial.then(|| logs::v1::ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message: message.to_string(),
                }),
            },
        ),
    }
}

fn encode_response<T: prost::Message + serde::Serialize>(encoding: Encoding, r: &T) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => r.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(r).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `/v1/traces`.
    Traces,
    /// `/v1/metrics`.
    Metrics,
    /// `/v1/logs`.
    Logs,
}
