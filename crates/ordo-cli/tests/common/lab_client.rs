//! The region lab's load: workers that broadcast uniquely tagged envelopes through the orderers'
//! client relays (so with the client region's delay), ten per stream, moving to the next orderer
//! when one refuses or cannot be reached, and a book of what happened. Every attempt carries a
//! tag of its own (`lab {worker} {seq}`), so a re-sent envelope is a new one and the ledger
//! check is exact: an acknowledged tag must be ordered once, no tag twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::*;

/// What the workers did.
#[derive(Default)]
pub struct Book {
    pub sent: AtomicU64,
    /// Acknowledged tags, and when each was acknowledged.
    pub acked: Mutex<Vec<(Instant, String)>>,
    /// Answers other than SUCCESS: when, status, info.
    pub refused: Mutex<Vec<(Instant, i32, String)>>,
    /// Streams that failed, ended early or timed out (an orderer down or cut off).
    pub interrupted: AtomicU64,
}

impl Book {
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    pub fn refused_count(&self) -> usize {
        self.refused.lock().unwrap().len()
    }

    /// The longest time between two acknowledgements (or from `from` to the first) at or after
    /// `from`.
    pub fn longest_gap_since(&self, from: Instant) -> Duration {
        let acked = self.acked.lock().unwrap();
        let mut last = from;
        let mut gap = Duration::ZERO;
        for (t, _) in acked.iter().filter(|(t, _)| *t >= from) {
            gap = gap.max(*t - last);
            last = *t;
        }
        gap
    }

    pub fn acked_since(&self, from: Instant) -> usize {
        self.acked
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= from)
            .count()
    }
}

pub struct LabLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub book: Arc<Book>,
}

impl LabLoad {
    /// `workers` workers, worker `w` starting with orderer `w % addrs.len()`.
    pub fn start(addrs: Vec<SocketAddr>, channel: &'static str, workers: usize) -> LabLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let book = Arc::new(Book::default());
        let tasks = (0..workers)
            .map(|w| {
                tokio::spawn(worker(
                    w,
                    addrs.clone(),
                    channel,
                    stop.clone(),
                    book.clone(),
                ))
            })
            .collect();
        LabLoad { stop, tasks, book }
    }

    /// Waits until at least `n` more envelopes than now are acknowledged.
    pub async fn wait_acked(&self, more: usize, what: &str) {
        let target = self.book.acked_count() + more;
        wait_for(what, || async { self.book.acked_count() >= target }).await;
    }

    /// Stops the workers (each finishes the stream it is on) and returns the book.
    pub async fn stop(self) -> Arc<Book> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.book
    }
}

/// Longest a worker waits for one stream's ten answers: above the acknowledgement timeout of the
/// lab's orderers (a commit that does not come in time is answered, not left hanging).
const STREAM_TIMEOUT: Duration = Duration::from_secs(15);

async fn worker(
    w: usize,
    addrs: Vec<SocketAddr>,
    channel: &'static str,
    stop: Arc<AtomicBool>,
    book: Arc<Book>,
) {
    let tls = client_tls(None, b"h2");
    let user1 = signer(USER1, "Org1MSP");
    let mut target = w % addrs.len();
    let mut conn: Option<AtomicBroadcastClient<tonic::transport::Channel>> = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(client) = conn.as_mut() else {
            match tokio::time::timeout(
                Duration::from_secs(2),
                grpc_channel(addrs[target], Some(tls.clone())),
            )
            .await
            {
                Ok(Ok(ch)) => conn = Some(AtomicBroadcastClient::new(ch)),
                _ => {
                    book.interrupted.fetch_add(1, Ordering::Relaxed);
                    target = (target + 1) % addrs.len();
                    // A back-off between attempts, as any client has.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        let tags: Vec<String> = (0..10)
            .map(|_| {
                seq += 1;
                format!("lab {w} {seq}")
            })
            .collect();
        let envs: Vec<Envelope> = tags
            .iter()
            .map(|t| {
                create_signed_envelope(
                    HeaderType::EndorserTransaction,
                    channel,
                    &user1,
                    Bytes::from(t.clone().into_bytes()),
                )
                .unwrap()
            })
            .collect();
        book.sent.fetch_add(envs.len() as u64, Ordering::Relaxed);
        let answered = tokio::time::timeout(STREAM_TIMEOUT, async {
            let mut stream = client
                .broadcast(futures::stream::iter(envs))
                .await?
                .into_inner();
            let mut refused = false;
            let mut n = 0;
            while let Some(r) = stream.message().await? {
                if r.status == Status::Success as i32 && !refused {
                    book.acked
                        .lock()
                        .unwrap()
                        .push((Instant::now(), tags[n].clone()));
                } else {
                    refused = true;
                    book.refused
                        .lock()
                        .unwrap()
                        .push((Instant::now(), r.status, r.info));
                }
                n += 1;
            }
            Ok::<_, tonic::Status>((n, refused))
        })
        .await;
        match answered {
            Ok(Ok((10, false))) => {}
            Ok(Ok((_, true))) => {
                target = (target + 1) % addrs.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => {
                book.interrupted.fetch_add(1, Ordering::Relaxed);
                conn = None;
                target = (target + 1) % addrs.len();
            }
        }
    }
}
