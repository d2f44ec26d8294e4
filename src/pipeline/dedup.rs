//! In-process de-duplication window.
//!
//! Pub/Sub delivers at least once, redelivers while a slow first attempt still runs, and a
//! publisher retry gives the same record a new message id. An event is identified by its id —
//! its Datastream `uuid` (the same record, however it was delivered), else the Pub/Sub message
//! id, else the CloudEvent `source` + `id` — *and* a digest of its content: a duplicate is the
//! same delivery, not merely the same id, because the id is chosen by whoever sends. Within the
//! window:
//! * an event already answered with a final status (success, or a permanent failure) is answered
//!   again with the same status and body, without processing it or writing its points again;
//! * a redelivery that arrives while the first attempt runs waits for that attempt's answer;
//! * an event that failed transiently is forgotten, so that its redelivery is processed anew;
//! * a different record under an id already seen is processed like a new one, and reported as a
//!   conflict ([`Ticket::conflict`]): a forged or broken record cannot take the real one's place.
//!
//! The window is per process: across instances, Cloud Monitoring's "already written" rejections
//! are the second line of defence (see the sink). An event evicted (past `DEDUP_CAPACITY`
//! entries, or older than the window) and delivered again is processed again: see docs/answers.md
//! for what that means for each kind of point.
//!
//! Its memory is bounded in bytes, not only in entries: a key is two 128-bit hashes (never the
//! id itself), and an answer is kept short ([`Remembered`]: the status and at most
//! [`super::answer::MAX_REMEMBERED_BODY`] bytes of body). Each entry takes at most
//! [`ENTRY_BYTES`] plus its body, so the window at most `DEDUP_CAPACITY` times that.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::answer::Remembered;

/// The identity of an event in the window: 128-bit hashes of its id and of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub id: u128,
    pub content: u128,
}

/// What one remembered event costs besides its answer's body, in bytes, at most: its slot in the
/// map and its id's count (entry plus control byte, at the hash tables' lowest load, 7/16 just
/// after they grow), and its place in the expiry queue (which at worst has doubled). A body, when
/// there is one (permanent failures), adds its length (at most
/// [`super::answer::MAX_REMEMBERED_BODY`]) and [`BODY_OVERHEAD`].
pub const ENTRY_BYTES: usize = 400;

/// The allocations of a remembered body besides its bytes (the allocator's header, and the
/// shared-buffer header a replay creates), in bytes.
pub const BODY_OVERHEAD: usize = 64;

enum Slot {
    Running(watch::Receiver<Option<Remembered>>),
    Done { answer: Remembered, at: Instant },
}

struct Inner {
    slots: HashMap<Key, Slot>,
    /// How many slots each id has (more than one: records that conflict).
    ids: HashMap<u128, u32>,
    /// Insertion order of finished keys, for expiry and the size bound.
    order: VecDeque<(Instant, Key)>,
}

impl Inner {
    fn insert(&mut self, key: Key, slot: Slot) {
        if self.slots.insert(key, slot).is_none() {
            *self.ids.entry(key.id).or_default() += 1;
        }
    }

    fn remove(&mut self, key: &Key) {
        if self.slots.remove(key).is_some()
            && let Some(n) = self.ids.get_mut(&key.id)
        {
            *n -= 1;
            if *n == 0 {
                self.ids.remove(&key.id);
            }
        }
    }
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
    key: Option<Key>,
    conflict: bool,
    tx: watch::Sender<Option<Remembered>>,
}

impl Dedup {
    pub fn new(window: Duration, capacity: usize) -> Arc<Dedup> {
        let inner = Inner { slots: HashMap::new(), ids: HashMap::new(), order: VecDeque::new() };
        Arc::new(Dedup { window, capacity, inner: Mutex::new(inner) })
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
                inner.remove(&key);
            }
        }
    }

    pub fn begin(self: &Arc<Self>, key: Option<Key>) -> Begin {
        let (tx, rx) = watch::channel(None);
        let Some(key) = key.filter(|_| self.enabled()) else {
            return Begin::Fresh(Ticket { dedup: None, key: None, conflict: false, tx });
        };
        let now = Instant::now();
        let mut inner = self.inner.lock().expect("dedup lock");
        self.expire(&mut inner, now);
        match inner.slots.get(&key) {
            Some(Slot::Done { answer, .. }) => return Begin::Seen(answer.clone()),
            Some(Slot::Running(rx)) => return Begin::Running(rx.clone()),
            None => {}
        }
        let conflict = inner.ids.contains_key(&key.id);
        inner.insert(key, Slot::Running(rx));
        Begin::Fresh(Ticket { dedup: Some(self.clone()), key: Some(key), conflict, tx })
    }

    /// Number of remembered keys (running or done).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.slots.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of events answered with a success (2xx) and still remembered, in the order
    /// they were answered (what a replay saves in its facts file).
    pub fn answered(&self) -> Vec<Key> {
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
    pub fn remember(&self, keys: impl IntoIterator<Item = Key>) {
        if !self.enabled() {
            return;
        }
        let answer = Remembered { status: 204, body: axum::body::Bytes::new() };
        let at = Instant::now();
        let mut inner = self.inner.lock().expect("dedup lock");
        for key in keys {
            inner.insert(key, Slot::Done { answer: answer.clone(), at });
            inner.order.push_back((at, key));
        }
        self.expire(&mut inner, at);
    }
}

impl Ticket {
    /// Whether another record (other content) under the same id is in the window: this one is
    /// processed all the same, and should be reported.
    pub fn conflict(&self) -> bool {
        self.conflict
    }

    /// Records the answer: `remember` = it is final (success or permanent failure).
    pub fn finish(mut self, answer: Remembered, remember: bool) {
        if let (Some(dedup), Some(key)) = (self.dedup.take(), self.key) {
            let mut inner = dedup.inner.lock().expect("dedup lock");
            if remember {
                let at = Instant::now();
                inner.insert(key, Slot::Done { answer: answer.clone(), at });
                inner.order.push_back((at, key));
                dedup.expire(&mut inner, at);
            } else {
                inner.remove(&key);
            }
        }
        let _ = self.tx.send(Some(answer).filter(|_| remember));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let (Some(dedup), Some(key)) = (self.dedup.take(), self.key) {
            if let Ok(mut inner) = dedup.inner.lock() {
                inner.remove(&key);
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

    fn k(name: &str) -> Option<Key> {
        Some(Key { id: crate::facts::Key::of(&[name]).0, content: 0 })
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
    fn another_record_under_a_known_id_is_fresh_and_a_conflict() {
        let d = Dedup::new(Duration::from_secs(60), 100);
        let real = Key { id: 7, content: 1 };
        let forged = Key { id: 7, content: 2 };
        let Begin::Fresh(t) = d.begin(Some(forged)) else { panic!("fresh") };
        assert!(!t.conflict());
        t.finish(answer(204), true);
        let Begin::Fresh(t) = d.begin(Some(real)) else { panic!("the real record is processed") };
        assert!(t.conflict(), "reported");
        t.finish(answer(204), true);
        assert!(matches!(d.begin(Some(real)), Begin::Seen(_)), "its redelivery is a duplicate");
        assert!(matches!(d.begin(Some(forged)), Begin::Seen(_)));
        assert_eq!(d.len(), 2);
        // ids are counted per slot, and forgotten with their last slot
        let Begin::Fresh(t) = d.begin(Some(Key { id: 8, content: 1 })) else { panic!() };
        drop(t);
        let Begin::Fresh(t) = d.begin(Some(Key { id: 8, content: 2 })) else { panic!() };
        assert!(!t.conflict(), "the dropped attempt left nothing behind");
    }

    #[test]
    fn entry_bytes_covers_an_entry_at_its_worst() {
        let per_bucket = |entry: usize| (entry + 1) * 16 / 7 + 1;
        let worst = per_bucket(std::mem::size_of::<(Key, Slot)>())
            + per_bucket(std::mem::size_of::<(u128, u32)>())
            + 2 * std::mem::size_of::<(Instant, Key)>();
        assert!(worst <= ENTRY_BYTES, "an entry may take {worst} bytes");
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
        // the same id with other content is not the answered record
        let other = Key { content: 9, ..k("ok").unwrap() };
        assert!(matches!(next.begin(Some(other)), Begin::Fresh(t) if t.conflict()));
    }
}
