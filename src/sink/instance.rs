//! Who this process is and what time it is, for the sinks that keep series per instance.
//!
//! Counters and histograms are summed by the backend across instances, so each instance must
//! write series of its own: the OTLP sink labels its resource `service.instance.id`, the Cloud
//! Monitoring sink writes them against a `generic_task` whose `task_id` names the instance.
//! Both take the id and the start time of [`Instance::process`]; tests build their own
//! [`Instance`] and [`Clock`] so that every time in a request is known.

use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

/// The sinks' source of the current time (the system clock in production).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// One process: a random id and the time it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// 32 lowercase hex digits, random per process.
    pub id: String,
    /// When the process started (the start of its cumulative series).
    pub started: DateTime<Utc>,
}

impl Instance {
    /// This process. The first call fixes the start time: `main` makes it before anything else.
    pub fn process() -> &'static Instance {
        static PROCESS: OnceLock<Instance> = OnceLock::new();
        PROCESS.get_or_init(|| Instance { id: random_id(), started: Utc::now() })
    }
}

/// 128 random bits as 32 hex digits. `RandomState` keys come from the operating system's
/// random source once per process (std's `hash_map::RandomState`), and hashing the time, the
/// process id and a counter with two of them gives two independent 64-bit values: no extra
/// dependency for one id per process.
pub fn random_id() -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let seed = (nanos, std::process::id(), seq);
    let a = std::collections::hash_map::RandomState::new().hash_one(seed);
    let b = std::collections::hash_map::RandomState::new().hash_one((seed, a));
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits_and_differ() {
        let a = random_id();
        let b = random_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
        assert_eq!(Instance::process(), Instance::process(), "one instance per process");
    }
}
