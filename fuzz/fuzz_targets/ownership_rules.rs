//! Fuzzes the ownership-rules parser and matcher with arbitrary text: rules may be refused (with
//! a line inside the text), never panic; rules that parse are matched against an event made from
//! the same bytes, which must not panic either.
//!
//! Run: `fuzz/run.sh ownership_rules` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_protocol::ownership::{self, Subject};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ownership::parse(text) {
        Ok(rules) => {
            let s = Subject::new(
                [text, "app:///src/api/x.js"],
                [text],
                Some(text),
                [("service", text)],
            );
            let (_, work) = rules.owners_counted(&s);
            assert!(work.bytes <= ownership::MAX_SCAN_BYTES + ownership::MAX_SUBJECT_BYTES);
        }
        Err(e) => assert!(e.line <= text.lines().count(), "{e}"),
    }
    let _ = ownership::glob(text, text);
});
