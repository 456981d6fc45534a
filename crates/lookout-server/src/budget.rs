//! The memory every Sentry ingest request may hold at once, and the size limits it is read under.
//!
//! One process-wide budget of bytes (a semaphore whose permits are bytes) covers the request
//! bodies being read, the buffers they are decompressed into and the item copies the envelope
//! parser makes. A request reserves before it allocates and never waits: when the budget is
//! spent it is answered 503 with `Retry-After`, which SDKs honour, so a burst of large or hostile
//! bodies costs at most the budget instead of one envelope cap per connection.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Size limits of Sentry ingest (the `limits` section of the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest envelope, on the wire and after decompression.
    pub max_envelope_bytes: usize,
    /// Largest event or transaction item, and largest `/store/` body after decompression.
    pub max_event_bytes: usize,
    /// Largest attachment kept; larger ones are dropped (the event is still kept).
    pub max_attachment_bytes: usize,
    /// Bytes all ingest requests may hold at once (bodies, decompressed data, parsed items).
    pub inflight_bytes: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_envelope_bytes: 20 * 1024 * 1024,
            max_event_bytes: lookout_protocol::event::MAX_EVENT_BYTES,
            max_attachment_bytes: 20 * 1024 * 1024,
            inflight_bytes: 64 * 1024 * 1024,
        }
    }
}

impl IngestLimits {
    /// Every problem with these limits, for the config file's error message.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_event_bytes == 0
            || self.max_event_bytes > lookout_protocol::event::MAX_EVENT_BYTES
        {
            out.push(format!(
                "limits.max_event_bytes must be between 1 and {} (events are parsed whole)",
                lookout_protocol::event::MAX_EVENT_BYTES
            ));
        }
        if self.max_envelope_bytes < self.max_event_bytes {
            out.push("limits.max_envelope_bytes must be at least limits.max_event_bytes".into());
        }
        // One envelope at its largest holds up to 2.5 times its size at once: the compressed
        // body with the growing output (the live buffer and, while it moves, the one before),
        // then the output with its items' copies. With less, it would get 503 on every retry.
        if self.inflight_bytes < self.max_envelope_bytes.saturating_mul(5) / 2 {
            out.push(
                "limits.max_inflight_bytes must be at least 2.5 times limits.max_envelope_bytes, or the largest envelope could never be accepted"
                    .into(),
            );
        }
        out
    }
}

/// The shared budget (cloned into every request).
#[derive(Clone)]
pub struct ByteBudget {
    bytes: Arc<Semaphore>,
    limits: IngestLimits,
}

impl ByteBudget {
    /// A budget of `limits.inflight_bytes`.
    pub fn new(limits: IngestLimits) -> Self {
        ByteBudget {
            bytes: Arc::new(Semaphore::new(
                limits.inflight_bytes.min(Semaphore::MAX_PERMITS),
            )),
            limits,
        }
    }

    /// The limits this budget enforces.
    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// An empty reservation to grow with [`ByteBudget::reserve`].
    pub fn reservation(&self) -> Reservation {
        Reservation(None)
    }

    /// Adds `n` bytes to `into` if the budget has them; never waits.
    pub fn reserve(&self, into: &mut Reservation, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match self.bytes.clone().try_acquire_many_owned(n) {
            Ok(p) => {
                match &mut into.0 {
                    Some(held) => held.merge(p),
                    None => into.0 = Some(p),
                }
                true
            }
            Err(_) => {
                metrics::counter!("lookout_ingest_budget_refusals_total").increment(1);
                false
            }
        }
    }
}

impl ByteBudget {
    /// Gives `n` of the bytes `from` holds back to the budget (less if it holds less).
    pub fn release(&self, from: &mut Reservation, n: usize) {
        if let Some(held) = &mut from.0 {
            let n = n.min(held.num_permits());
            if n == held.num_permits() {
                from.0 = None;
            } else {
                drop(held.split(n));
            }
        }
    }

    /// Moves everything `from` holds into `into`.
    pub fn transfer(&self, from: &mut Reservation, into: &mut Reservation) {
        if let Some(p) = from.0.take() {
            match &mut into.0 {
                Some(held) => held.merge(p),
                None => into.0 = Some(p),
            }
        }
    }
}

/// Bytes held by one request, returned to the budget when dropped.
pub struct Reservation(Option<OwnedSemaphorePermit>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_come_back_when_dropped_and_never_exceed_the_budget() {
        let b = ByteBudget::new(IngestLimits {
            inflight_bytes: 100,
            ..IngestLimits::default()
        });
        let mut r = b.reservation();
        assert!(b.reserve(&mut r, 60));
        assert!(b.reserve(&mut r, 30));
        let mut other = b.reservation();
        assert!(!b.reserve(&mut other, 20), "only 10 bytes are left");
        drop(r);
        assert_eq!(b.available(), 100);
        assert!(b.reserve(&mut other, 100));
    }

    #[test]
    fn limits_that_cannot_work_are_reported() {
        assert!(IngestLimits::default().problems().is_empty());
        let bad = IngestLimits {
            max_event_bytes: 5 << 20,
            inflight_bytes: 1,
            ..IngestLimits::default()
        };
        assert_eq!(bad.problems().len(), 2);
    }
}
