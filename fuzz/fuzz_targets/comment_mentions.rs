//! Fuzzes the mention finder of issue comments with arbitrary text: it never panics, the pieces
//! always join back into the comment, and no more than the cap are read.
//!
//! Run: `fuzz/run.sh comment_mentions` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_protocol::mentions::{self, Piece};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pieces = mentions::pieces(text);
    let joined: String = pieces
        .iter()
        .map(|p| match p {
            Piece::Text(s) | Piece::Mention(_, s) => *s,
        })
        .collect();
    assert_eq!(joined, text);
    assert!(mentions::mentions(text).len() <= mentions::MAX_MENTIONS);
});
