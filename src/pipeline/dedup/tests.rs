//! Unit tests of the de-duplication window: answers remembered and replayed, waiting
//! duplicates, conflicts, expiry and the memory bound.

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
async fn every_waiting_duplicate_gets_the_answer_and_a_later_one_the_remembered_answer() {
    let d = Dedup::new(Duration::from_secs(60), 100);
    let Begin::Fresh(t) = d.begin(k("k")) else { panic!() };
    let Begin::Running(mut first) = d.begin(k("k")) else { panic!("running") };
    let Begin::Running(mut second) = d.begin(k("k")) else { panic!("running") };
    t.finish(answer(400), true);
    for rx in [&mut first, &mut second] {
        let got = rx.wait_for(|a| a.is_some()).await.unwrap().clone();
        assert_eq!(got.unwrap().status, 400);
    }
    let Begin::Seen(later) = d.begin(k("k")) else { panic!("seen") };
    assert_eq!(later.status, 400);
}

#[tokio::test]
async fn a_waiter_of_a_cancelled_attempt_is_woken_with_nothing() {
    let d = Dedup::new(Duration::from_secs(60), 100);
    let Begin::Fresh(t) = d.begin(k("k")) else { panic!() };
    let Begin::Running(mut rx) = d.begin(k("k")) else { panic!("running") };
    drop(t);
    tokio::time::timeout(Duration::from_secs(1), rx.changed()).await.expect("woken at once").unwrap();
    assert_eq!(*rx.borrow(), None);
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
fn another_content_takes_the_place_of_the_first_when_it_goes() {
    let d = Dedup::new(Duration::from_secs(60), 100);
    let first = Key { id: 5, content: 1 };
    let second = Key { id: 5, content: 2 };
    let Begin::Fresh(a) = d.begin(Some(first)) else { panic!() };
    let Begin::Fresh(b) = d.begin(Some(second)) else { panic!() };
    assert!(b.conflict());
    b.finish(answer(204), true);
    drop(a);
    assert_eq!(d.len(), 1);
    assert!(matches!(d.begin(Some(second)), Begin::Seen(r) if r.status == 204), "still remembered");
    let Begin::Fresh(t) = d.begin(Some(first)) else { panic!("the dropped attempt is processed anew") };
    assert!(t.conflict(), "the id is still known");
    assert_eq!(d.answered(), vec![second]);
}

#[test]
fn entry_bytes_covers_an_entry_at_its_worst() {
    let per_bucket = |entry: usize| (entry + 1) * 16 / 7 + 1;
    let worst = per_bucket(std::mem::size_of::<(u128, Contents)>()) + 2 * std::mem::size_of::<Answered>();
    assert!(worst <= ENTRY_BYTES, "an entry may take {worst} bytes");
    assert_eq!(std::mem::size_of::<(u128, Contents)>(), 48, "the layout the module documents");
    assert_eq!(std::mem::size_of::<Answered>(), 24);
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
