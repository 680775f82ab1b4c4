//! Connection shedding on the webhook port. A connection holds one of the listener's
//! permits from its accept to its end. Until it has sent a complete request head it is
//! *unproductive*: still in the TLS handshake, or dripping header bytes (slowloris). When
//! every permit is taken, the oldest unproductive connection is closed to make room, so that
//! slow connections cannot hold accept capacity against clients that send requests; a
//! connection that has sent a request is never shed (its body and answer have timeouts of
//! their own).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// The unproductive connections, oldest first, each with the way to close it.
#[derive(Debug, Default)]
pub(crate) struct Unproductive {
    inner: Mutex<(u64, BTreeMap<u64, oneshot::Sender<()>>)>,
}

/// One connection's place among the unproductive until its first request.
#[derive(Debug)]
pub(crate) struct Pending {
    id: u64,
    registry: Arc<Unproductive>,
    productive: AtomicBool,
}

impl Unproductive {
    /// Registers a new connection; the receiver fires when it is shed.
    pub(crate) fn register(self: &Arc<Self>) -> (Arc<Pending>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.0 += 1;
        let id = inner.0;
        inner.1.insert(id, tx);
        let pending = Arc::new(Pending {
            id,
            registry: self.clone(),
            productive: AtomicBool::new(false),
        });
        (pending, rx)
    }

    /// Closes the oldest unproductive connection; `false` when there is none.
    fn shed_oldest(&self) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((_, tx)) = inner.1.pop_first() {
            // a connection that already ended has dropped its receiver: try the next
            if tx.send(()).is_ok() {
                return true;
            }
        }
        false
    }

    /// How many connections are unproductive now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Pending {
    /// The connection sent a request head: it can no longer be shed.
    pub(crate) fn productive(&self) {
        if !self.productive.swap(true, Ordering::Relaxed) {
            self.leave();
        }
    }

    fn leave(&self) {
        let mut inner = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        inner.1.remove(&self.id);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.productive.load(Ordering::Relaxed) {
            self.leave();
        }
    }
}

/// A permit for the next connection: at once if one is free, else by shedding the oldest
/// unproductive connection, else (every connection is serving requests) when one ends.
pub(crate) async fn permit(
    permits: &Arc<Semaphore>,
    unproductive: &Unproductive,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return Some(permit);
    }
    if unproductive.shed_oldest() {
        tracing::debug!(
            "connection limit reached: the oldest connection without a request was closed"
        );
    }
    permits.clone().acquire_owned().await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_unproductive_connection_makes_room() {
        let permits = Arc::new(Semaphore::new(2));
        let registry = Arc::new(Unproductive::default());
        // two connections: the first stays silent, the second sends a request
        let first_permit = permit(&permits, &registry).await.unwrap();
        let (first, mut first_shed) = registry.register();
        let _second_permit = permit(&permits, &registry).await.unwrap();
        let (second, mut second_shed) = registry.register();
        second.productive();
        assert_eq!(registry.len(), 1);
        // a third arrives: the silent first one is told to close, and its permit serves
        let shed = tokio::spawn(async move {
            (&mut first_shed).await.unwrap();
            drop(first);
            drop(first_permit);
        });
        let third = permit(&permits, &registry).await;
        assert!(third.is_some());
        shed.await.unwrap();
        assert!(
            second_shed.try_recv().is_err(),
            "a productive connection was shed"
        );
        assert!(registry.is_empty());
    }
}
