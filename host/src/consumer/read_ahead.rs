//! Read-ahead during a backlog: when a full batch of new entries went
//! quickly, the next read goes out (with the last batch's XACK in the same
//! write) before the batch is handled, so Redis serves it while the plugin
//! runs. The entries read ahead are leased like those in hand.

use super::{AckMode, Acks, Consumer, Step};
use crate::consumer::lease::refresh_every;
use crate::handler::HandlerSource;
use crate::streams::{Batch, Reader};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Batches of new entries handled faster than this are followed by a read-ahead.
const READ_AHEAD_BELOW: Duration = Duration::from_millis(20);

/// A batch read ahead: the read in flight, then its result once it came in
/// (taken while a batch is handled, so its entries are leased meanwhile).
pub(super) enum Ahead {
    InFlight(tokio::task::JoinHandle<Result<(Reader, Batch)>>),
    Ready(Result<(Reader, Batch)>),
}

impl Ahead {
    /// Ids of the entries read, once they are in.
    pub(super) fn ids(&self) -> impl Iterator<Item = &String> {
        let batch = match self {
            Ahead::Ready(Ok((_, batch))) => Some(batch),
            _ => None,
        };
        batch.into_iter().flat_map(|b| b.entries.iter().map(|e| &e.id))
    }
}

impl<S: HandlerSource> Consumer<S> {
    /// Takes the batch read ahead (the acks of the batch before it went in
    /// the same write, ahead of the read).
    pub(super) async fn read_ahead_step(&mut self, shutdown: &CancellationToken) -> Step {
        let Some(ahead) = self.read_ahead.take() else { return Ok(()) };
        let acks = self.ahead_acks.take();
        let read = match ahead {
            Ahead::Ready(read) => read,
            Ahead::InFlight(mut read) => tokio::select! {
                _ = shutdown.cancelled() => {
                    read.abort();
                    self.unsent(acks);
                    return Ok(());
                }
                read = &mut read => read.context("read-ahead task panicked").flatten(),
            },
        };
        let (reader, batch) = match read {
            Ok(read) => read,
            Err(error) => {
                self.unsent(acks);
                return Err(error.into());
            }
        };
        self.reader = Some(reader);
        if let Some(acks) = acks {
            self.count_acked(acks.ids.len());
        }
        self.process_read(batch, shutdown).await
    }

    /// Handles a batch of new entries. When it is full (a backlog) and the
    /// last one went quickly, the next read goes out first, so Redis serves
    /// it while the plugin runs: throughput is then the slower of the two,
    /// not their sum. The entries read ahead are leased like those in hand
    /// (see [`Self::invoke`]). Only after quick batches: a consumer that dies
    /// holds them too; for slow batches one round trip saved is nothing.
    pub(super) async fn process_read(&mut self, batch: Batch, shutdown: &CancellationToken) -> Step {
        let full = batch.entries.len() + batch.trimmed.len() >= self.settings.count;
        let quick = self.last_batch < READ_AHEAD_BELOW.min(refresh_every(self.settings.min_idle));
        if full && quick && self.settings.ack == AckMode::Batched && !shutdown.is_cancelled() {
            let (reader, redis) = (self.reader.take(), self.redis.clone());
            let s = self.settings.clone();
            let name = self.name.clone();
            let observer = self.observer.clone();
            // The last batch's acks go in the same write as this read: no
            // round trip of their own, none waited for before this batch.
            let acks = Arc::new(Acks {
                ids: std::mem::take(&mut self.unacked),
                stamps: std::mem::take(&mut self.unacked_stamps),
            });
            self.ahead_acks = Some(acks.clone());
            self.read_ahead = Some(Ahead::InFlight(tokio::spawn(async move {
                let mut reader = match reader {
                    Some(reader) => reader,
                    None => redis.reader(&s.stream).await?,
                };
                let block = Duration::from_millis(1);
                let batch = reader.read_new(&acks.ids, &s.stream, &s.group, &name, s.count, block).await?;
                if let Some(observer) = &observer {
                    observer.acked(&acks.stamps);
                }
                Ok((reader, batch))
            })));
        }
        let started = Instant::now();
        let processed = self.process(batch, shutdown).await;
        self.last_batch = started.elapsed();
        processed
    }
}
