//! Plugin instances shared by a worker's owned streams: at most `parallel`
//! calls at once, each on an idle instance of the current plugin version
//! (made when none is idle; those of an older version are dropped after a
//! hot reload). An instance per stream would cost memory for every stream
//! owned; the pool costs one per call running.

use crate::handler::{Delivery, HandlerSource};
use crate::settings::GroupSettings;
use anyhow::Result;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// A worker's instances.
pub(super) struct Pool<S: HandlerSource> {
    plugin: Mutex<watch::Receiver<Arc<S>>>,
    idle: Mutex<Vec<(Arc<S>, S::Handler)>>,
    permits: Arc<Semaphore>,
    delivery: Delivery,
    settings: Arc<GroupSettings>,
}

/// An instance lent for one call, with its call slot; given back by [`Pool::give_back`].
pub(super) struct Lent<S: HandlerSource> {
    pub(super) version: Arc<S>,
    /// `None`: none was idle; [`Lent::handler`] makes one (on the blocking thread).
    handler: Option<S::Handler>,
    _permit: OwnedSemaphorePermit,
}

impl<S: HandlerSource> Lent<S> {
    /// The instance, made now if none was idle.
    pub(super) fn handler(&mut self, pool: &Pool<S>) -> Result<&mut S::Handler> {
        if self.handler.is_none() {
            let s = &pool.settings;
            self.handler = Some(self.version.instantiate(&pool.delivery, s.call_deadline, &s.limits)?);
        }
        Ok(self.handler.as_mut().expect("made above"))
    }
}

impl<S: HandlerSource> Pool<S> {
    pub(super) fn new(
        plugin: watch::Receiver<Arc<S>>,
        delivery: Delivery,
        settings: Arc<GroupSettings>,
        parallel: usize,
    ) -> Self {
        Pool {
            plugin: Mutex::new(plugin),
            idle: Mutex::default(),
            permits: Arc::new(Semaphore::new(parallel)),
            delivery,
            settings,
        }
    }

    /// Waits for a call slot and lends an instance of the current version.
    pub(super) async fn lend(&self) -> Lent<S> {
        let permit = self.permits.clone().acquire_owned().await.expect("the pool's semaphore is never closed");
        let version = self.plugin.lock().expect("pool lock").borrow_and_update().clone();
        let mut idle = self.idle.lock().expect("pool lock");
        idle.retain(|(v, _)| Arc::ptr_eq(v, &version));
        let handler = idle.pop().map(|(_, h)| h);
        Lent { version, handler, _permit: permit }
    }

    /// Takes an instance back for the next call (dropped if its version was replaced).
    pub(super) fn give_back(&self, lent: Lent<S>) {
        if let Some(handler) = lent.handler {
            let current = self.plugin.lock().expect("pool lock").borrow().clone();
            if Arc::ptr_eq(&lent.version, &current) {
                self.idle.lock().expect("pool lock").push((lent.version, handler));
            }
        }
    }

    /// The plugin version serving now.
    pub(super) fn current(&self) -> Arc<S> {
        self.plugin.lock().expect("pool lock").borrow().clone()
    }
}
