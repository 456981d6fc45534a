//! Time-ordered ids for rows written through the group commit.
//!
//! Rows written in a batch cannot learn an autoincrement id back in a reliable order, so their ids
//! are made before the write: 48 bits of milliseconds then 80 bits that start random, as 32 hex
//! characters (the layout of UUIDv7). Within a process they strictly increase: an id made in the
//! same millisecond as the previous one (or after the clock stepped back) is the previous one plus
//! one, the monotonic method of RFC 9562. So "newest first" is exact, not just millisecond-exact,
//! and they make good keyset cursors.

use std::sync::Mutex;

use rand::RngCore;

/// The last id made: (milliseconds, 80-bit tail).
static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));

const TAIL_BITS: u32 = 80;
const TAIL_MAX: u128 = (1 << TAIL_BITS) - 1;

/// A new 32-hex-character id, greater than every id this process made before.
pub fn new_sortable_id() -> String {
    let now = u64::try_from(crate::time::now_ms()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut rnd = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut rnd);
    // Start the tail in its lower half so increments within one millisecond cannot overflow it.
    let fresh = u128::from_le_bytes(rnd) & (TAIL_MAX >> 1);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ms, tail) = if now > last.0 {
        (now, fresh)
    } else if last.1 < TAIL_MAX {
        (last.0, last.1 + 1)
    } else {
        (last.0 + 1, fresh)
    };
    *last = (ms, tail);
    format!("{ms:012x}{tail:020x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_hex_and_strictly_increase() {
        let ids: Vec<String> = (0..10_000).map(|_| super::new_sortable_id()).collect();
        assert!(ids
            .iter()
            .all(|i| i.len() == 32 && i.chars().all(|c| c.is_ascii_hexdigit())));
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids made in one millisecond must still sort"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(super::new_sortable_id()[..12] > ids[0][..12]);
    }
}
