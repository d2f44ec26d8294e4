//! In-process de-duplication window.
//!
//! Pub/Sub delivers at least once, redelivers while a slow first attempt still runs, and a
//! publisher retry gives the same record a new message id. One key identifies an event: its
//! Datastream `uuid` (the same record, however it was delivered), else the Pub/Sub message id,
//! else the CloudEvent `source` + `id`. Within the window:
//! * an event already answered with a final status (success, or a permanent failure) is answered
//!   again with the same status and body, without processing it or writing its points again;
//! * a redelivery that arrives while the first attempt runs waits for that attempt's answer;
//! * an event that failed transiently is forgotten, so that its redelivery is processed anew.
//!
//! The window is per process: across instances, Cloud Monitoring's "already written" rejections
//! are the second line of defence (see the sink).
//!
//! Keys are 128-bit hashes of the identity ([`crate::facts::Key`]): nothing is allocated per
//! event, and the answered keys of a replay can be saved and loaded again
//! ([`Dedup::answered`], [`Dedup::remember`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::answer::Remembered;

enum Slot {
    Running(watch::Receiver<Option<Remembered>>),
    Done { answer: Remembered, at: Instant },
}

/// The identity of an event (see the module documentation).
pub type DedupKey = u128;

/// Keys are uniform 128-bit hashes already: their low 64 bits are the map's hash, with no
/// second hashing per event.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

struct Inner {
    slots: HashMap<DedupKey, Slot, std::hash::BuildHasherDefault<KeyHasher>>,
    /// Insertion order of finished keys, for expiry and the size bound.
    order: VecDeque<(Instant, DedupKey)>,
}

pub struct Dedup {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

/// What to do with an arriving event.
pub enum Begin {
    /// Not seen: process it, then call [`Ticket::finish`].
    Fresh(Ticket),
    /// Already answered: replay this answer.
    Seen(Remembered),
    /// Another attempt is running: wait for its answer (`None` if it failed transiently).
    Running(watch::Receiver<Option<Remembered>>),
}

/// Held while an event is processed. Dropping it unfinished (a cancelled request) forgets the
/// key so that a redelivery is processed.
pub struct Ticket {
    dedup: Option<Arc<Dedup>>,
    key: DedupKey,
    tx: watch::Sender<Option<Remembered>>,
}

impl Dedup {
    pub fn new(window: Duration, capacity: usize) -> Arc<Dedup> {
        Arc::new(Dedup {
            window,
            capacity,
            inner: Mutex::new(Inner { slots: HashMap::default(), order: VecDeque::new() }),
        })
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some((at, _)) = inner.order.front() {
            if now.duration_since(*at) < self.window && inner.order.len() <= self.capacity {
                break;
            }
            let (at, key) = inner.order.pop_front().expect("front exists");
            if matches!(inner.slots.get(&key), Some(Slot::Done { at: done_at, .. }) if *done_at == at) {
                inner.slots.remove(&key);
            }
        }
    }

    pub fn begin(self: &Arc<Self>, key: Option<DedupKey>) -> Begin {
        let (tx, rx) = watch::channel(None);
        let Some(key) = key.filter(|_| self.enabled()) else {
            return Begin::Fresh(Ticket { dedup: None, key: 0, tx });
        };
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("dedup lock");
        self.expire(&mut inner, now);
        match inner.slots.get(&key) {
            Some(Slot::Done { answer, .. }) => return Begin::Seen(answer.clone()),
            Some(Slot::Running(rx)) => return Begin::Running(rx.clone()),
            None => {}
        }
        inner.slots.insert(key, Slot::Running(rx));
        Begin::Fresh(Ticket { dedup: Some(self.clone()), key, tx })
    }

    /// Number of remembered keys (running or done).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.slots.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of events answered with a success (2xx) and still remembered, in the order
    /// they were answered.
    pub fn answered(&self) -> Vec<DedupKey> {
        let inner = self.inner.lock().expect("dedup lock");
        inner
            .order
            .iter()
            .filter(|(at, key)| {
                matches!(inner.slots.get(key), Some(Slot::Done { answer, at: done }) if done == at && (200..300).contains(&answer.status))
            })
            .map(|(_, key)| *key)
            .collect()
    }

    /// Remembers `keys` as answered 204 now (events answered by an earlier process: a replay's
    /// saved state), within the window and capacity like any answer.
    pub fn remember(&self, keys: impl IntoIterator<Item = DedupKey>) {
        if !self.enabled() {
            return;
        }
        let answer = Remembered { status: 204, body: axum::body::Bytes::new() };
        let at = Instant::now();
        let mut inner = self.inner.lock().expect("dedup lock");
        for key in keys {
            inner.slots.insert(key, Slot::Done { answer: answer.clone(), at });
            inner.order.push_back((at, key));
        }
        self.expire(&mut inner, at);
    }
}

impl Ticket {
    /// Records the answer: `remember` = it is final (success or permanent failure).
    pub fn finish(mut self, answer: Remembered, remember: bool) {
        if let Some(dedup) = self.dedup.take() {
            let mut inner = dedup.inner.lock().expect("dedup lock");
            if remember {
                let at = Instant::now();
                inner.slots.insert(self.key, Slot::Done { answer: answer.clone(), at });
                inner.order.push_back((at, self.key));
                dedup.expire(&mut inner, at);
            } else {
                inner.slots.remove(&self.key);
            }
        }
        let _ = self.tx.send(Some(answer).filter(|_| remember));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(dedup) = self.dedup.take() {
            if let Ok(mut inner) = dedup.inner.lock() {
                inner.slots.remove(&self.key);
            }
            let _ = self.tx.send(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    fn answer(status: u16) -> Remembered {
        Remembered { status, body: Bytes::from_static(b"{}") }
    }

    fn k(name: &str) -> Option<DedupKey> {
        Some(crate::facts::Key::of(&[name]).0)
    }

    #[test]
    fn final_answers_are_replayed_transient_ones_forgotten() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        let Begin::Fresh(t) = d.begin(k("uuid:a")) else { panic!("fresh") };
        t.finish(answer(204), true);
        assert!(matches!(d.begin(k("uuid:a")), Begin::Seen(a) if a.status == 204));
        let Begin::Fresh(t) = d.begin(k("uuid:b")) else { panic!("fresh") };
        t.finish(answer(503), false);
        assert!(matches!(d.begin(k("uuid:b")), Begin::Fresh(_)), "a transient failure is processed again");
    }

    #[tokio::test]
    async fn a_concurrent_duplicate_waits_for_the_first_attempt() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        let Begin::Fresh(t) = d.begin(k("k")) else { panic!() };
        let Begin::Running(mut rx) = d.begin(k("k")) else { panic!("running") };
        t.finish(answer(400), true);
        let got = rx.wait_for(|a| a.is_some()).await.unwrap().clone();
        assert_eq!(got.unwrap().status, 400);
    }

    #[tokio::test]
    async fn a_waiting_duplicate_learns_at_once_that_the_first_attempt_failed_transiently() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        let Begin::Fresh(t) = d.begin(k("k")) else { panic!() };
        let Begin::Running(mut rx) = d.begin(k("k")) else { panic!("running") };
        t.finish(answer(503), false);
        tokio::time::timeout(Duration::from_secs(1), rx.changed()).await.expect("woken at once").unwrap();
        assert_eq!(*rx.borrow(), None);
    }

    #[test]
    fn a_dropped_ticket_releases_the_key() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        let Begin::Fresh(t) = d.begin(k("k")) else { panic!() };
        drop(t);
        assert!(matches!(d.begin(k("k")), Begin::Fresh(_)));
    }

    #[test]
    fn window_and_capacity_bound_the_memory() {
        let d = Dedup::new(Duration::from_millis(30), 3);
        for i in 0..10 {
            let Begin::Fresh(t) = d.begin(k(&format!("k{i}"))) else { panic!() };
            t.finish(answer(204), true);
        }
        assert!(d.len() <= 3, "{}", d.len());
        assert!(matches!(d.begin(k("k0")), Begin::Fresh(_)), "evicted by capacity");
        std::thread::sleep(Duration::from_millis(40));
        let Begin::Fresh(t) = d.begin(k("new")) else { panic!() };
        t.finish(answer(204), true);
        assert!(matches!(d.begin(k("k9")), Begin::Fresh(_)), "expired");
        // disabled window: never remembers
        let off = Dedup::new(Duration::ZERO, 10);
        let Begin::Fresh(t) = off.begin(k("x")) else { panic!() };
        t.finish(answer(204), true);
        assert!(matches!(off.begin(k("x")), Begin::Fresh(_)));
    }

    #[test]
    fn answered_keys_can_be_remembered_by_another_window() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        for (name, status, remember) in [("ok", 204, true), ("bad", 400, true), ("retry", 503, false)] {
            let Begin::Fresh(t) = d.begin(k(name)) else { panic!() };
            t.finish(answer(status), remember);
        }
        let Begin::Fresh(_running) = d.begin(k("running")) else { panic!() };
        assert_eq!(d.answered(), vec![k("ok").unwrap()], "successes only: a failed event is tried again");
        let next = Dedup::new(Duration::from_secs(60), 100);
        next.remember(d.answered());
        assert!(matches!(next.begin(k("ok")), Begin::Seen(a) if a.status == 204));
        assert!(matches!(next.begin(k("bad")), Begin::Fresh(_)));
    }
}
