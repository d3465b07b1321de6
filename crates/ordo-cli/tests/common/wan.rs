//! The region lab's wide-area links (`common::lab`): this kernel has no `netem`, so delay is
//! added in user space, by TCP relays that hold every chunk they read for a one-way delay (plus
//! jitter) before writing it on. A relay runs *inside* a network namespace: its thread enters
//! the namespace before creating any socket, so its listeners are the region's own loopback
//! addresses and its outgoing connections leave through the region's interface — taking the
//! region's link down cuts them as it cuts everything else the region sends.
//!
//! Both directions of a relayed connection are delayed by the same one-way delay, so a round
//! trip over it takes twice that. Bytes keep their order: a chunk is never released before the
//! one read ahead of it, whatever its jitter.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// One relayed address: connections to `listen` are relayed to `target`.
#[derive(Clone, Debug)]
pub struct Route {
    pub listen: SocketAddr,
    pub target: SocketAddr,
    pub one_way: Duration,
    /// Each chunk waits a further uniformly drawn `0..jitter`.
    pub jitter: Duration,
}

/// Relays running on a thread of their own, in a namespace; stopped (every listener and
/// relayed connection closed) when dropped.
pub struct NsRelay {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The bound listen addresses, in the order of the routes (a route asking for port 0 gets
    /// one from the kernel).
    pub bound: Vec<SocketAddr>,
}

/// Moves the calling thread into the network namespace `/var/run/netns/{name}` (what
/// `ip netns exec` does for a process).
pub fn enter_netns(name: &str) -> std::io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: setns on a valid namespace file descriptor affects only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl NsRelay {
    /// Binds every route's listener in namespace `netns` (or this process's own) before
    /// returning, then relays until dropped. `seed` draws the jitter.
    pub fn start(netns: Option<&str>, routes: Vec<Route>, seed: u64) -> NsRelay {
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let netns = netns.map(str::to_string);
        let thread = std::thread::spawn(move || {
            if let Some(ns) = &netns {
                enter_netns(ns).unwrap_or_else(|e| panic!("entering netns {ns}: {e}"));
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut listeners = Vec::new();
                for r in &routes {
                    let l = TcpListener::bind(r.listen)
                        .await
                        .unwrap_or_else(|e| panic!("relay bind {} in {netns:?}: {e}", r.listen));
                    listeners.push(l);
                }
                let addrs: Vec<SocketAddr> =
                    listeners.iter().map(|l| l.local_addr().unwrap()).collect();
                let _ = ready.send(addrs);
                for (i, (l, r)) in listeners.into_iter().zip(routes).enumerate() {
                    let seed = seed.wrapping_add(i as u64 * 0x9e37_79b9);
                    tokio::spawn(accept_loop(l, r, seed));
                }
                let _ = stopped.await;
            });
            // Dropping the runtime cancels every relayed connection's tasks.
        });
        let bound = bound
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay thread did not bind its listeners");
        NsRelay {
            stop: Some(stop),
            thread: Some(thread),
            bound,
        }
    }
}

impl Drop for NsRelay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, route: Route, seed: u64) {
    let mut n = 0u64;
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        n += 1;
        tokio::spawn(relay_one(inbound, route.clone(), seed.wrapping_add(n)));
    }
}

async fn relay_one(inbound: TcpStream, route: Route, seed: u64) {
    // A connection attempt across a cut link hangs as it would on a real network; the
    // connecting node's own timeouts decide when to give up.
    let Ok(outbound) = TcpStream::connect(route.target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (ir, iw) = inbound.into_split();
    let (or, ow) = outbound.into_split();
    let there = delayed_copy(ir, ow, route.one_way, route.jitter, seed);
    let back = delayed_copy(or, iw, route.one_way, route.jitter, seed ^ 0x5555);
    // Either side closing ends both: a half-open relayed connection would keep a peer waiting.
    tokio::select! {
        _ = there => {}
        _ = back => {}
    }
}

/// Chunks in flight on one direction of one connection: a bound on what the relay buffers
/// (as a link's queue is bounded); a full queue stops reading, and TCP pushes back.
const IN_FLIGHT: usize = 1024;

async fn delayed_copy(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    one_way: Duration,
    jitter: Duration,
    seed: u64,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let reader = async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut last = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let extra = if jitter.is_zero() {
                Duration::ZERO
            } else {
                jitter.mul_f64(rng.r#gen::<f64>())
            };
            let release = (Instant::now() + one_way + extra).max(last);
            last = release;
            if tx.send((release, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((release, chunk)) = rx.recv().await {
            tokio::time::sleep_until(release).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    // The writer drains what the reader queued before the reader's end closes the queue.
    tokio::join!(reader, writer);
}
