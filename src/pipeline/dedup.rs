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
//! id itself), and an answer is kept short (its status, and a body only for permanent failures:
//! at most [`super::answer::MAX_REMEMBERED_BODY`] bytes). Each entry takes at most
//! [`ENTRY_BYTES`] plus its body, so the window at most `DEDUP_CAPACITY` times that.
//!
//! Layout (what makes an entry 48 bytes in its table and 24 in the expiry queue): entries are
//! found by id, with the content digest beside the slot; the rare other contents under a known
//! id (a conflict) live in a small second table. Times are milliseconds since the window was
//! made, in 32 bits (the window is at most 24 days, so differences never wrap).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::watch;

use super::answer::Remembered;
use crate::facts::KeyHasher;

/// The identity of an event in the window: 128-bit hashes of its id and of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub id: u128,
    pub content: u128,
}

/// What one remembered event costs besides its answer's body, in bytes, at most: its slot in the
/// table (entry plus control byte, at the table's lowest load, 7/16 just after it grows), and its
/// place in the expiry queue (which at worst has doubled). A body, when there is one (permanent
/// failures), adds its length (at most [`super::answer::MAX_REMEMBERED_BODY`]) and
/// [`BODY_OVERHEAD`].
pub const ENTRY_BYTES: usize = 176;

/// The allocations of a remembered body besides its bytes (the allocator's headers, and the
/// shared-buffer header a replay creates), in bytes.
pub const BODY_OVERHEAD: usize = 64;

/// The longest window: its times are 32-bit milliseconds, whose differences are exact up to
/// 2^31 ms (24.8 days).
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 24 * 3600);

/// Milliseconds since the window was made, wrapping (differences are taken with wrapping
/// arithmetic).
type Millis = u32;

enum Slot {
    /// Being processed. The channel to its waiters is made by the first redelivery that waits
    /// (most records have none: no channel per record); boxed, since only the few events in
    /// flight with a waiter have one.
    Running(Option<Box<watch::Sender<Option<Remembered>>>>),
    /// A final answer: its status, when it was given, and its body unless empty.
    Done { status: u16, at: Millis, body: Option<Box<Bytes>> },
}

impl Slot {
    fn done(answer: &Remembered, at: Millis) -> Slot {
        let body = (!answer.body.is_empty()).then(|| Box::new(answer.body.clone()));
        Slot::Done { status: answer.status, at, body }
    }

    fn answer(status: u16, body: &Option<Box<Bytes>>) -> Remembered {
        Remembered { status, body: body.as_deref().cloned().unwrap_or_default() }
    }

    fn done_at(&self, when: Millis) -> bool {
        matches!(self, Slot::Done { at, .. } if *at == when)
    }
}

/// The slot of the content seen first under an id.
struct Contents {
    content: u128,
    slot: Slot,
}

/// The expiry queue's entry: when a slot was answered, and its id (as two halves, so that the
/// entry is 24 bytes rather than 32).
type Answered = (Millis, [u64; 2]);

fn halves(id: u128) -> [u64; 2] {
    [(id >> 64) as u64, id as u64]
}

fn whole([high, low]: [u64; 2]) -> u128 {
    (u128::from(high) << 64) | u128::from(low)
}

struct Inner {
    ids: HashMap<u128, Contents, BuildHasherDefault<KeyHasher>>,
    /// Slots of other contents under an id of `ids` (conflicts).
    others: HashMap<Key, Slot>,
    /// The order finished slots were answered in, for expiry and the size bound.
    order: VecDeque<Answered>,
}

impl Inner {
    fn insert(&mut self, key: Key, slot: Slot) {
        match self.ids.get_mut(&key.id) {
            Some(c) if c.content == key.content => c.slot = slot,
            Some(_) => {
                self.others.insert(key, slot);
            }
            None => {
                self.ids.insert(key.id, Contents { content: key.content, slot });
            }
        }
    }

    /// Removes the slots of `id` that `remove` selects; when the first content goes, another
    /// one of the id (if any) takes its place.
    fn remove_where(&mut self, id: u128, remove: impl Fn(u128, &Slot) -> bool) {
        if !self.others.is_empty() {
            self.others.retain(|k, s| k.id != id || !remove(k.content, s));
        }
        let Some(c) = self.ids.get(&id) else { return };
        if !remove(c.content, &c.slot) {
            return;
        }
        self.ids.remove(&id);
        let next = self.others.keys().find(|k| k.id == id).copied();
        if let Some(key) = next {
            let slot = self.others.remove(&key).expect("found");
            self.ids.insert(id, Contents { content: key.content, slot });
        }
    }

    fn remove(&mut self, key: &Key) {
        self.remove_where(key.id, |c, _| c == key.content);
    }

    fn len(&self) -> usize {
        self.ids.len() + self.others.len()
    }

    /// The slot of `key`: that of its id's first content, else of another content of the id.
    fn get_mut(&mut self, key: &Key) -> Option<&mut Slot> {
        if self.ids.get(&key.id).is_some_and(|c| c.content == key.content) {
            return self.ids.get_mut(&key.id).map(|c| &mut c.slot);
        }
        self.others.get_mut(key)
    }

    /// The channel to the waiters of a running slot, taken out of it (`None`: nobody waits).
    fn take_waiters(&mut self, key: &Key) -> Option<Box<watch::Sender<Option<Remembered>>>> {
        match self.get_mut(key)? {
            Slot::Running(waiters) => waiters.take(),
            Slot::Done { .. } => None,
        }
    }
}

pub struct Dedup {
    window: Duration,
    capacity: usize,
    origin: Instant,
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
}

impl Dedup {
    pub fn new(window: Duration, capacity: usize) -> Arc<Dedup> {
        let inner = Inner { ids: HashMap::default(), others: HashMap::new(), order: VecDeque::new() };
        Arc::new(Dedup { window: window.min(MAX_WINDOW), capacity, origin: Instant::now(), inner: Mutex::new(inner) })
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    fn now(&self) -> Millis {
        self.origin.elapsed().as_millis() as Millis
    }

    fn expire(&self, inner: &mut Inner, now: Millis) {
        let window = self.window.as_millis() as Millis;
        while let Some((at, _)) = inner.order.front() {
            if now.wrapping_sub(*at) < window && inner.order.len() <= self.capacity {
                break;
            }
            let (at, id) = inner.order.pop_front().expect("front exists");
            inner.remove_where(whole(id), |_, s| s.done_at(at));
        }
    }

    pub fn begin(self: &Arc<Self>, key: Option<Key>) -> Begin {
        let Some(key) = key.filter(|_| self.enabled()) else {
            return Begin::Fresh(Ticket { dedup: None, key: None, conflict: false });
        };
        let now = self.now();
        let mut inner = self.inner.lock().expect("dedup lock");
        self.expire(&mut inner, now);
        match inner.get_mut(&key) {
            Some(Slot::Done { status, body, .. }) => return Begin::Seen(Slot::answer(*status, body)),
            // the first waiter makes the channel the running attempt answers through
            Some(Slot::Running(waiters)) => {
                return Begin::Running(waiters.get_or_insert_with(|| Box::new(watch::channel(None).0)).subscribe());
            }
            None => {}
        }
        let conflict = inner.ids.contains_key(&key.id);
        inner.insert(key, Slot::Running(None));
        Begin::Fresh(Ticket { dedup: Some(self.clone()), key: Some(key), conflict })
    }

    /// Number of remembered keys (running or done).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of events answered with a success (2xx) and still remembered, in the order
    /// they were answered (what a replay saves in its facts file).
    pub fn answered(&self) -> Vec<Key> {
        let inner = self.inner.lock().expect("dedup lock");
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (at, id) in &inner.order {
            let id = whole(*id);
            let Some(c) = inner.ids.get(&id) else { continue };
            let others = inner.others.iter().filter(|(k, _)| k.id == id).map(|(k, s)| (k.content, s));
            for (content, slot) in std::iter::once((c.content, &c.slot)).chain(others) {
                if matches!(slot, Slot::Done { status, at: done, .. } if done == at && (200..300).contains(status))
                    && seen.insert(Key { id, content })
                {
                    out.push(Key { id, content });
                }
            }
        }
        out
    }

    /// Remembers `keys` as answered 204 now (events answered by an earlier process: a replay's
    /// saved state), within the window and capacity like any answer.
    pub fn remember(&self, keys: impl IntoIterator<Item = Key>) {
        if !self.enabled() {
            return;
        }
        let at = self.now();
        let mut inner = self.inner.lock().expect("dedup lock");
        for key in keys {
            inner.insert(key, Slot::Done { status: 204, at, body: None });
            inner.order.push_back((at, halves(key.id)));
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
            let waiters = inner.take_waiters(&key);
            if remember {
                let at = dedup.now();
                inner.insert(key, Slot::done(&answer, at));
                inner.order.push_back((at, halves(key.id)));
                dedup.expire(&mut inner, at);
            } else {
                inner.remove(&key);
            }
            drop(inner);
            if let Some(tx) = waiters {
                let _ = tx.send(Some(answer).filter(|_| remember));
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let (Some(dedup), Some(key)) = (self.dedup.take(), self.key) {
            let waiters = dedup.inner.lock().ok().and_then(|mut inner| {
                let waiters = inner.take_waiters(&key);
                inner.remove(&key);
                waiters
            });
            if let Some(tx) = waiters {
                let _ = tx.send(None);
            }
        }
    }
}

#[cfg(test)]
mod tests;
