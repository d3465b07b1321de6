//! Bounds on a listener's connections, so that a flood of idle or half-open connections costs
//! the node a bounded number of file descriptors and cannot crowd out clients from elsewhere:
//!
//! - **in all**: at most [`Limits::total`] connections (TLS handshakes included) are held at once;
//!   at the bound the listener stops accepting until one closes (new connections wait in the
//!   kernel's backlog rather than fail);
//! - **per remote address**: at most [`Limits::per_ip`] of them from one IP address; beyond that
//!   a new connection from that address is closed at once, so one client (or one attacker)
//!   cannot take every slot.
//!
//! - **streams per connection**: at most [`MAX_STREAMS_PER_CONNECTION`] gRPC streams open at once
//!   on one HTTP/2 connection (advertised in its SETTINGS; a Go or tonic client waits for a
//!   stream to end before it opens one more). Each open Deliver stream holds a few blocks at
//!   most (its small queue and what HTTP/2 flow control lets through), so memory is bounded too.
//!   Go's gRPC server sets no such bound by default; hyper's is 200.
//!
//! The connection bounds follow the process's soft limit on open files (which the `ordo` binary raises to
//! the hard limit at start): a quarter of it for each listener, since the node has four
//! listeners and needs descriptors for its files and outbound connections too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The most gRPC streams one connection may have open at once (see the module doc): far above
/// what a peer, an SDK or another orderer opens on one connection, which is a few.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// The connection bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_ip: usize,
}

impl Limits {
    /// The bounds for this process (see the module doc), computed once.
    pub fn for_this_process() -> Limits {
        static LIMITS: OnceLock<Limits> = OnceLock::new();
        *LIMITS.get_or_init(|| {
            let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX);
            Limits::from_open_files(soft)
        })
    }

    /// A quarter of `open_files` per listener (at least 64, at most 16,384), an eighth of that
    /// per remote address (at least 16).
    pub fn from_open_files(open_files: u64) -> Limits {
        let total = usize::try_from(open_files / 4)
            .unwrap_or(usize::MAX)
            .clamp(64, 16_384);
        Limits::with_total(total)
    }

    /// `total` connections in all, an eighth of them per remote address (at least 16, at most
    /// all).
    pub fn with_total(total: usize) -> Limits {
        Limits {
            total,
            per_ip: (total / 8).max(16).min(total),
        }
    }
}

/// The slots of one listener.
#[derive(Clone)]
pub struct Slots {
    limits: Limits,
    total: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A connection's slot, given back when it drops.
pub struct Slot {
    _total: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Slots {
    pub fn new(limits: Limits) -> Slots {
        Slots {
            limits,
            total: Arc::new(Semaphore::new(limits.total)),
            per_ip: Arc::default(),
        }
    }

    /// Waits for a free slot in all: called before accepting, so that at the bound the
    /// listener stops accepting.
    pub async fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        self.total.clone().acquire_owned().await.ok()
    }

    /// The slot of a connection accepted from `ip` with the reserved `permit`; `None` when that
    /// address holds its share already (the connection is then closed).
    pub fn admit(&self, permit: OwnedSemaphorePermit, ip: IpAddr) -> Option<Slot> {
        let mut counts = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.limits.per_ip {
            return None;
        }
        *n += 1;
        debug_assert!(
            counts.len() <= self.limits.total,
            "an address without a slot"
        );
        Some(Slot {
            _total: permit,
            ip,
            per_ip: self.per_ip.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_the_open_file_limit() {
        assert_eq!(
            Limits::from_open_files(1024),
            Limits {
                total: 256,
                per_ip: 32
            }
        );
        assert_eq!(Limits::from_open_files(100).total, 64);
        assert_eq!(Limits::from_open_files(100).per_ip, 16);
        assert_eq!(Limits::from_open_files(u64::MAX).total, 16_384);
        assert_eq!(Limits::with_total(1024).per_ip, 128);
        assert_eq!(Limits::with_total(10).per_ip, 10);
    }

    #[tokio::test]
    async fn one_address_gets_its_share_and_slots_come_back_when_connections_close() {
        let slots = Slots::new(Limits {
            total: 4,
            per_ip: 2,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.admit(slots.reserve().await.unwrap(), a).unwrap();
        let _a2 = slots.admit(slots.reserve().await.unwrap(), a).unwrap();
        // A third from the same address is refused, and its reservation given back.
        assert!(slots.admit(slots.reserve().await.unwrap(), a).is_none());
        let _b1 = slots.admit(slots.reserve().await.unwrap(), b).unwrap();
        let _b2 = slots.admit(slots.reserve().await.unwrap(), b).unwrap();
        // All four taken: the next reservation waits until one closes.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), slots.reserve());
        assert!(waiting.await.is_err());
        drop(a1);
        let permit = slots.reserve().await.unwrap();
        assert!(slots.admit(permit, a).is_some());
    }
}
