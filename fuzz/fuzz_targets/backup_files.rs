//! Fuzzes what `lookout restore` and `lookout backup verify` read from a backup directory and
//! what the shipper reads from SQLite's files: WAL records (checksummed, zstd frames), and WAL
//! headers, frames and their checksum chain; and `pgbackrest info --output=json` as the backups
//! job reads it. A damaged file must end the valid prefix with an error, never panic.
//!
//! Run: `fuzz/run.sh backup_files` from the repository root (stable toolchain; see docs/operations.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_store::backup::{archive, wal};

fuzz_target!(|data: &[u8]| {
    let (records, _) = archive::decode_records(data);
    for r in &records {
        if let Ok(frames) = r.frames() {
            let _ = wal::transactions(&frames, r.header.page_size);
        }
    }
    if let Some(h) = wal::WalHeader::parse(data) {
        let mut chain = h.checksum;
        let rest = &data[wal::WAL_HEADER..];
        for frame in rest.chunks(h.frame_size()) {
            match h.check_frame(chain, frame) {
                Some(c) => chain = c,
                None => break,
            }
        }
        let _ = wal::transactions(rest, h.page_size);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lookout_server::backups::pgbackrest::parse_info(text, "main");
    }
    // Any bytes as frames of a small page size.
    for page_size in [512u32, 1024] {
        if let Some(txs) = wal::transactions(data, page_size) {
            for tx in txs {
                let _ = wal::frame_page(tx);
                let _ = wal::frame_commit_size(tx);
            }
        }
    }
});
