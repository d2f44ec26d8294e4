//! The delivery driver: every record of a delivery sorted into known, waiting and fresh, the
//! fresh ones dispatched and their points written in one sink call, all within the delivery's
//! deadline.

use std::time::Instant;

use super::answer::{self, Outcome, RecordResult};
use super::dedup::{self, Begin, Ticket};
use super::record::{content_digest, dedup_id, report_outcome};
use super::{Pipeline, events, labels};
use crate::decode::{ChangeEvent, DeliveryMeta};
use crate::facts::Reservation;
use crate::handlers::{Report, builtin::FAILURE_METRIC};
use crate::sink::{Delivered, Point};

/// A record on its way through [`Pipeline::handle`].
enum Slot {
    /// Its outcome is known without processing (not decodable, or a replayed duplicate).
    Known(Outcome),
    /// A redelivery of a record whose first attempt runs: wait for that attempt's answer.
    Waiting(tokio::sync::watch::Receiver<Option<answer::Remembered>>),
    /// To be processed.
    Fresh(Box<ChangeEvent>, Ticket),
}

/// What processing a fresh record produced.
struct Processed {
    event: Box<ChangeEvent>,
    ticket: Ticket,
    report: Report,
    outcome: Outcome,
    /// Lifecycle facts reserved for this record: released if its points are not written.
    reserved: Vec<Reservation>,
    /// Indices of this record's points in the delivery's point list.
    points: std::ops::Range<usize>,
    /// What the label guard changed in its points.
    guarded: labels::Guarded,
}

impl Pipeline {
    /// Every record's outcome: de-duplicated, dispatched and written within `deadline` (past
    /// it, the unfinished records are transient failures and their work is cancelled).
    pub(super) async fn outcomes(
        &self,
        format: crate::decode::DeliveryFormat,
        meta: &DeliveryMeta,
        records: Vec<crate::decode::RecordInput>,
        deadline: std::time::Duration,
    ) -> Vec<RecordResult> {
        let started = Instant::now();
        let mut items = Vec::with_capacity(records.len());
        let mut slots = Vec::with_capacity(records.len());
        for input in records {
            slots.push(match input.record {
                Err(e) => match Outcome::of_decode_error(e) {
                    Outcome::Ignored { reason } => {
                        events::Ignored { format, item: input.item.as_deref(), reason: &reason }.emit(&self.stats);
                        Slot::Known(Outcome::Ignored { reason })
                    }
                    rejected => Slot::Known(rejected),
                },
                Ok(event) if event.is_history() && !self.config.process_history => {
                    events::HistorySkipped { format, event: &event, item: input.item.as_deref() }.emit(&self.stats);
                    Slot::Known(Outcome::History)
                }
                Ok(mut event) => {
                    if event.is_history() {
                        self.history_time(&mut event);
                    }
                    let key = match dedup_id(meta, &event) {
                        Some(id) if self.dedup.enabled() => Some(dedup::Key { id, content: content_digest(&event) }),
                        _ => None,
                    };
                    match self.dedup.begin(key) {
                        Begin::Seen(prev) => {
                            events::Duplicate { status: prev.status, format, waited: false }.emit(&self.stats);
                            Slot::Known(Outcome::Duplicate(prev))
                        }
                        Begin::Running(rx) => Slot::Waiting(rx),
                        Begin::Fresh(ticket) => {
                            if ticket.conflict() {
                                events::DedupConflict { format, event: &event, item: input.item.as_deref() }
                                    .emit(&self.stats);
                            }
                            Slot::Fresh(Box::new(event), ticket)
                        }
                    }
                }
            });
            items.push(input.item);
        }
        let mut outcomes: Vec<Option<Outcome>> = slots
            .iter_mut()
            .map(|s| match s {
                Slot::Known(o) => Some(std::mem::replace(o, Outcome::Done)),
                _ => None,
            })
            .collect();
        let work = self.run(format, meta, &items, slots, started);
        match tokio::time::timeout(deadline, work).await {
            Ok(done) => {
                for (i, o) in done {
                    outcomes[i] = Some(o);
                }
            }
            Err(_) => {
                // The work was cancelled: its tickets are dropped, so redeliveries are processed
                // anew.
                let outcome = Outcome::DeadlineExceeded { deadline_secs: deadline.as_secs_f64() };
                let pending = outcomes.iter().filter(|o| o.is_none()).count();
                let status = answer::record_answer(&outcome, self.policy()).status.as_u16();
                events::DeadlineExceeded { status, deadline, format, records: pending }.emit(&self.stats);
                for o in outcomes.iter_mut().filter(|o| o.is_none()) {
                    *o = Some(outcome.clone());
                }
            }
        }
        let results: Vec<RecordResult> = items
            .into_iter()
            .zip(outcomes)
            .map(|(item, outcome)| RecordResult { item, outcome: outcome.unwrap_or(Outcome::InProgress) })
            .collect();
        for r in &results {
            if let Outcome::Rejected(error) = &r.outcome {
                let status = answer::record_answer(&r.outcome, self.policy()).status.as_u16();
                events::Rejected { status, error, format: Some(format), meta: Some(meta), item: r.item.as_deref() }
                    .emit(&self.stats);
            }
        }
        results
    }

    /// Waits for the duplicates, processes the fresh records and writes their points. Returns
    /// (record index, outcome) for every record that was not known before.
    async fn run(
        &self,
        format: crate::decode::DeliveryFormat,
        meta: &DeliveryMeta,
        items: &[Option<String>],
        slots: Vec<Slot>,
        started: Instant,
    ) -> Vec<(usize, Outcome)> {
        let mut out = Vec::new();
        let mut fresh = Vec::new();
        let mut waiting = Vec::new();
        for (i, slot) in slots.into_iter().enumerate() {
            match slot {
                Slot::Known(_) => {}
                Slot::Waiting(rx) => waiting.push((i, rx)),
                Slot::Fresh(event, ticket) => fresh.push((i, event, ticket)),
            }
        }
        // A redelivery while the first attempt runs waits for its outcome: a final answer, or
        // None when it failed transiently or was cancelled.
        let waits = futures_util::future::join_all(waiting.into_iter().map(|(i, mut rx)| async move {
            let _ = rx.changed().await;
            let prev = rx.borrow().clone();
            (i, prev)
        }));
        let dispatches = futures_util::future::join_all(fresh.into_iter().map(|(i, event, ticket)| async move {
            let (report, reserved) = self.dispatch(&event).await;
            (i, event, ticket, report, reserved)
        }));
        let (waited, dispatched) = futures_util::future::join(waits, dispatches).await;
        for (i, prev) in waited {
            let outcome = match prev {
                Some(prev) => Outcome::Duplicate(prev),
                None => Outcome::InProgress,
            };
            let status = answer::record_answer(&outcome, self.policy()).status.as_u16();
            events::Duplicate { status, format, waited: true }.emit(&self.stats);
            out.push((i, outcome));
        }
        // Points of every processed record, written in one sink call. A record that failed
        // transiently will be retried: only its failure gauges are written now, so that the
        // retry writes every point exactly once.
        let mut points: Vec<Point> = Vec::new();
        let mut processed: Vec<(usize, Processed)> = Vec::with_capacity(dispatched.len());
        for (i, event, ticket, mut report, mut reserved) in dispatched {
            let outcome = report_outcome(&report);
            events::Dispatched { format, outcome: &outcome, report: &report }.emit(&self.stats);
            let mut own = std::mem::take(&mut report.points);
            if outcome.class() == Some(crate::error::ErrorClass::Transient) {
                own.retain(|p| p.name == FAILURE_METRIC);
                // nothing of this record is written now: its redelivery must find its facts free
                self.release(&std::mem::take(&mut reserved)).await;
            }
            // Every point of the record (claim gauges, lifecycle counters, failure gauges)
            // passes the label guard before the sink.
            let guarded = self.labels.apply(&mut own);
            self.stats.count_guarded(&guarded);
            let start = points.len();
            points.extend(own);
            processed.push((
                i,
                Processed { event, ticket, report, outcome, reserved, points: start..points.len(), guarded },
            ));
        }
        if processed.is_empty() {
            return out;
        }
        if self.config.self_metrics {
            points.extend(self.stats.flush(&self.dispatcher.projects().metric, self.config.self_metrics_interval));
        }
        let written = points.len();
        let delivered: Delivered = self.sink.emit(&points).await;
        let single = processed.len() == 1;
        for (i, mut p) in processed {
            if let Err(e) = delivered.result()
                && (single || !p.points.is_empty())
            {
                p.outcome = Outcome::SinkFailed(e.clone());
                self.release(&p.reserved).await;
            }
            let answer = answer::record_answer(&p.outcome, self.policy());
            events::Processed {
                status: answer.status.as_u16(),
                format,
                meta,
                item: items[i].as_deref(),
                event: &p.event,
                report: &p.report,
                outcome: &p.outcome,
                points: if single { written } else { p.points.len() },
                guarded: &p.guarded,
                sink: &delivered,
                started,
            }
            .emit(&self.stats);
            let is_final = p.outcome.is_final();
            p.ticket.finish(answer.remembered(), is_final);
            out.push((i, p.outcome));
        }
        out
    }
}
