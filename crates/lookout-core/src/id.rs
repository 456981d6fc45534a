//! Time-ordered ids for rows written through the group commit.
//!
//! Rows written in a batch cannot learn an autoincrement id back in a reliable order, so their ids
//! are made before the write: 48 bits of milliseconds then 80 random bits, as 32 hex characters
//! (the layout of UUIDv7). They sort by creation time, which makes them good keyset cursors.

use rand::RngCore;

/// A new 32-hex-character id that sorts after every id made in an earlier millisecond.
pub fn new_sortable_id() -> String {
    let ms = u64::try_from(crate::time::now_ms()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut rnd = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut rnd);
    format!("{ms:012x}{}", hex::encode(rnd))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_hex_and_sort_by_time() {
        let a = super::new_sortable_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_sortable_id();
        assert_eq!(a.len(), 32);
        assert!(a < b, "{a} should sort before {b}");
    }
}
