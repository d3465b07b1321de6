//! A TCP relay the tests control, in front of each node's cluster listener: the channel's
//! consenter entries name the relay's ports, the nodes listen on others. The relay tells which
//! node opened a connection (the socket's owner, found through /proc: on loopback every
//! connection comes from 127.0.0.1) and can cut the links from one node to another — both ways
//! for a partition, one way for a one-way partition — or delay what crosses them (a slow link).
//!
//! A node sends its Raft messages and forwarded envelopes on connections it opens itself, so
//! cutting the connections node A opens to node B stops everything A sends B: A's heartbeats and
//! votes reach B no more, while B's reach A. Cut links are closed at once and new connections on
//! them are closed as soon as they are accepted, as when a firewall drops them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Node indexes from 0.
type Link = (usize, usize);

#[derive(Default)]
struct Links {
    /// Each node's process, to tell who opened a connection.
    pids: Vec<Option<u32>>,
    cut: HashSet<Link>,
    delay: HashMap<Link, Duration>,
    /// Open relayed connections, and how to close each.
    open: Vec<(Link, watch::Sender<bool>)>,
    relayed: u64,
    refused: u64,
    unknown: u64,
}

impl Links {
    fn delay(&self, link: Link) -> Duration {
        self.delay.get(&link).copied().unwrap_or_default()
    }

    fn close_cut(&mut self) {
        let cut = &self.cut;
        self.open.retain(|(link, closer)| {
            if cut.contains(link) {
                let _ = closer.send(true);
                false
            } else {
                !closer.is_closed()
            }
        });
    }
}

pub struct Relay {
    links: Arc<Mutex<Links>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Relays `127.0.0.1:listen[i]` to `127.0.0.1:target[i]`, node `i`'s cluster listener, for
    /// `n` nodes. The listening ports are bound before this returns.
    pub async fn start(listen: &[u16], target: &[u16]) -> Relay {
        assert_eq!(listen.len(), target.len());
        let links = Arc::new(Mutex::new(Links {
            pids: vec![None; listen.len()],
            ..Links::default()
        }));
        let mut tasks = Vec::new();
        for (to, (&l, &t)) in listen.iter().zip(target).enumerate() {
            let listener = TcpListener::bind(("127.0.0.1", l)).await.unwrap();
            let links = links.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((inbound, peer)) = listener.accept().await else {
                        continue;
                    };
                    let links = links.clone();
                    tokio::spawn(relay_one(inbound, peer.port(), l, to, t, links));
                }
            }));
        }
        Relay { links, tasks }
    }

    /// Node `i` runs as process `pid` (or is down).
    pub fn set_pid(&self, i: usize, pid: Option<u32>) {
        self.links.lock().unwrap().pids[i] = pid;
    }

    /// Cuts what node `from` sends node `to`.
    pub fn cut(&self, from: usize, to: usize) {
        let mut l = self.links.lock().unwrap();
        l.cut.insert((from, to));
        l.close_cut();
    }

    /// Cuts node `i` off from every other node, both ways.
    pub fn isolate(&self, i: usize) {
        let n = self.links.lock().unwrap().pids.len();
        for j in (0..n).filter(|j| *j != i) {
            self.cut(i, j);
            self.cut(j, i);
        }
    }

    /// Delays everything node `i` sends and receives by `d`.
    pub fn slow(&self, i: usize, d: Duration) {
        let mut l = self.links.lock().unwrap();
        let n = l.pids.len();
        for j in (0..n).filter(|j| *j != i) {
            l.delay.insert((i, j), d);
            l.delay.insert((j, i), d);
        }
    }

    /// Every link whole and fast again.
    pub fn heal(&self) {
        let mut l = self.links.lock().unwrap();
        l.cut.clear();
        l.delay.clear();
    }

    /// Connections relayed, refused on cut links, and closed because no node held their other
    /// end (a node that closed it at once, or not a node).
    pub fn counts(&self) -> (u64, u64, u64) {
        let l = self.links.lock().unwrap();
        (l.relayed, l.refused, l.unknown)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let mut l = self.links.lock().unwrap();
        for (_, closer) in l.open.drain(..) {
            let _ = closer.send(true);
        }
    }
}

async fn relay_one(
    inbound: TcpStream,
    peer_port: u16,
    listen_port: u16,
    to: usize,
    target: u16,
    links: Arc<Mutex<Links>>,
) {
    let pids = links.lock().unwrap().pids.clone();
    let from = owner_of(peer_port, listen_port, &pids);
    let (link, closed) = {
        let mut l = links.lock().unwrap();
        let Some(from) = from else {
            l.unknown += 1;
            return;
        };
        if l.cut.contains(&(from, to)) {
            l.refused += 1;
            return;
        }
        let (closer, closed) = watch::channel(false);
        l.open.push(((from, to), closer));
        l.relayed += 1;
        ((from, to), closed)
    };
    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (ir, iw) = inbound.into_split();
    let (or, ow) = outbound.into_split();
    let back = (link.1, link.0);
    let mut closed = closed;
    tokio::select! {
        _ = pipe(ir, ow, links.clone(), link) => {}
        _ = pipe(or, iw, links.clone(), back) => {}
        _ = closed.wait_for(|c| *c) => {}
    }
}

/// Copies `from` to `to`, each chunk delayed by the link's delay when it was read.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    links: Arc<Mutex<Links>>,
    link: Link,
) {
    let (tx, mut rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let due = tokio::time::Instant::now() + links.lock().unwrap().delay(link);
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Which of `pids` holds the socket connected from `127.0.0.1:port` to `127.0.0.1:to_port`.
fn owner_of(port: u16, to_port: u16, pids: &[Option<u32>]) -> Option<usize> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    // Addresses in /proc/net/tcp: the IPv4 address as a little-endian hex word, the port in hex.
    let local = format!("0100007F:{port:04X}");
    let remote = format!("0100007F:{to_port:04X}");
    let inode = tcp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(2) == Some(&remote.as_str()))
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    let socket = format!("socket:[{inode}]");
    pids.iter().enumerate().find_map(|(i, pid)| {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", (*pid)?)).ok()?;
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == socket.as_str()))
            .then_some(i)
    })
}
