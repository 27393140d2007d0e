//! Admission of connections that have not authenticated yet.
//!
//! Handshakes in progress have a budget of their own, apart from authenticated sessions:
//! so many at once in all, and so many from one address. A new connection over a budget
//! evicts the oldest handshake in progress (of its own address when that address is over
//! its share, else of all), never itself: connections that open and then say nothing (a
//! port scanner, or someone holding the port on purpose) are pushed out by the next
//! arrival, and a legitimate peer, whose handshake takes a few round trips, gets in while
//! any number of them are held. Each handshake also has its own deadline (the caller's).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Handshakes in progress at once, in all.
pub const MAX_HANDSHAKES: usize = 32;
/// Handshakes in progress at once from one address.
pub const MAX_HANDSHAKES_PER_ADDR: usize = 8;
/// A handshake's whole deadline, in steps of its per-step timeout: hello, proof, welcome.
pub const HANDSHAKE_STEPS: u32 = 3;

/// The handshakes in progress and their budgets.
#[derive(Debug)]
pub struct Admission {
    total: usize,
    per_addr: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// Oldest first.
    pending: VecDeque<(u64, IpAddr, CancellationToken)>,
}

/// One handshake's place in the budget; leaves it when dropped.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    evicted: CancellationToken,
    admission: Arc<Admission>,
}

impl Admission {
    /// Budgets of `total` handshakes at once and `per_addr` from one address (each at least 1).
    pub fn new(total: usize, per_addr: usize) -> Arc<Admission> {
        Arc::new(Admission {
            total: total.max(1),
            per_addr: per_addr.max(1),
            state: Mutex::default(),
        })
    }

    /// Admits a handshake from `ip`, evicting the oldest one in progress where a budget is
    /// over: of `ip`'s own when it holds its whole share, else of all.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Ticket {
        let evicted = CancellationToken::new();
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = st.pending.iter().filter(|(_, a, _)| *a == ip).count();
        let victim = if mine >= self.per_addr {
            st.pending.iter().position(|(_, a, _)| *a == ip)
        } else if st.pending.len() >= self.total {
            Some(0)
        } else {
            None
        };
        if let Some((_, addr, token)) = victim.and_then(|i| st.pending.remove(i)) {
            tracing::info!("handshake from {addr} evicted: the handshake budget is full");
            token.cancel();
        }
        let id = st.next;
        st.next += 1;
        st.pending.push_back((id, ip, evicted.clone()));
        Ticket {
            id,
            evicted,
            admission: self.clone(),
        }
    }

    /// Handshakes in progress.
    pub fn pending(&self) -> usize {
        self.state.lock().map_or(0, |s| s.pending.len())
    }
}

impl Ticket {
    /// Resolves when a later arrival evicted this handshake.
    pub fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.evicted.clone().cancelled_owned()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut st) = self.admission.state.lock() {
            st.pending.retain(|(id, _, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_new_arrival_evicts_the_oldest_handshake_never_itself() {
        let a = Admission::new(3, 3);
        let t: Vec<Ticket> = (1..=3).map(|i| a.admit(ip(i))).collect();
        let newest = a.admit(ip(9));
        assert!(t[0].evicted.is_cancelled());
        assert!(!t[1].evicted.is_cancelled() && !t[2].evicted.is_cancelled());
        assert!(!newest.evicted.is_cancelled());
        assert_eq!(a.pending(), 3);
    }

    #[test]
    fn one_address_over_its_share_evicts_its_own_oldest_not_anothers() {
        let a = Admission::new(10, 2);
        let other = a.admit(ip(1));
        let first = a.admit(ip(2));
        let second = a.admit(ip(2));
        let third = a.admit(ip(2));
        assert!(first.evicted.is_cancelled());
        assert!(!second.evicted.is_cancelled() && !third.evicted.is_cancelled());
        assert!(!other.evicted.is_cancelled());
    }

    #[test]
    fn a_finished_handshake_leaves_the_budget() {
        let a = Admission::new(2, 2);
        let t = a.admit(ip(1));
        assert_eq!(a.pending(), 1);
        drop(t);
        assert_eq!(a.pending(), 0);
    }
}
