//! A UDP relay that sits between two nodes and misbehaves on purpose: it drops,
//! delays, duplicates and reorders datagrams, or swallows everything for a while
//! (a cut cable). The demo uses it to cut a center off; the fault tests use the rest.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Distinct client addresses relayed at once; a node uses one.
const FLOWS_MAX: usize = 64;
/// Datagrams held back for delay or reordering at once; more are dropped, as a
/// congested router would.
const DELAYED_MAX: usize = 8_192;
/// Largest datagram relayed: the UDP maximum.
const DATAGRAM_MAX_BYTES: usize = 65_535;

/// How the relay misbehaves; rates are probabilities per datagram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    pub drop_rate: f64,
    pub duplicate_rate: f64,
    pub reorder_rate: f64,
    pub delay_ms: u64,
    pub jitter_ms: u64,
}

#[derive(Debug, Default)]
pub struct RelayCounters {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
}

#[derive(Debug)]
struct Control {
    faults: Mutex<Faults>,
    blackhole: AtomicBool,
    rng: Mutex<u64>,
    delayed: AtomicUsize,
    counters: RelayCounters,
}

impl Control {
    fn chance(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        ((*s >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s % n
    }
}

/// A running relay: clients send to [`Relay::addr`], the relay forwards to the target.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    control: Arc<Control>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: SocketAddr, faults: Faults, seed: u64) -> std::io::Result<Relay> {
        let bind: SocketAddr = if target.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        }
        .parse()
        .map_err(std::io::Error::other)?;
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        let addr = socket.local_addr()?;
        let control = Arc::new(Control {
            faults: Mutex::new(faults),
            blackhole: AtomicBool::new(false),
            rng: Mutex::new(seed | 1),
            delayed: AtomicUsize::new(0),
            counters: RelayCounters::default(),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(socket, target, bind, control.clone(), cancel.clone()));
        Ok(Relay {
            addr,
            control,
            cancel,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Swallow every datagram both ways (true) or let them through again (false).
    pub fn set_blackhole(&self, on: bool) {
        self.control.blackhole.store(on, Ordering::Relaxed);
    }

    pub fn set_faults(&self, faults: Faults) {
        *self
            .control
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = faults;
    }

    pub fn counters(&self) -> &RelayCounters {
        &self.control.counters
    }

    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

async fn run(
    socket: Arc<UdpSocket>,
    target: SocketAddr,
    bind: SocketAddr,
    control: Arc<Control>,
    cancel: CancellationToken,
) {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; DATAGRAM_MAX_BYTES];
    loop {
        let (n, src) = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                // ICMP errors surface here on some systems; the relay carries on.
                Err(_) => continue,
            },
        };
        let upstream = match flows.get(&src) {
            Some(u) => u.clone(),
            None => {
                if flows.len() >= FLOWS_MAX {
                    continue;
                }
                let Ok(up) = UdpSocket::bind(bind).await else {
                    continue;
                };
                if up.connect(target).await.is_err() {
                    continue;
                }
                let up = Arc::new(up);
                flows.insert(src, up.clone());
                let (back, down, ctl, token) =
                    (up.clone(), socket.clone(), control.clone(), cancel.clone());
                tasks.spawn(async move {
                    let mut buf = vec![0u8; DATAGRAM_MAX_BYTES];
                    loop {
                        tokio::select! {
                            biased;
                            _ = token.cancelled() => break,
                            r = back.recv(&mut buf) => if let Ok(n) = r {
                                forward(&down, Some(src), buf[..n].to_vec(), &ctl);
                            }
                        }
                    }
                });
                up
            }
        };
        forward(&upstream, None, buf[..n].to_vec(), &control);
    }
    tasks.abort_all();
}

fn forward(
    socket: &Arc<UdpSocket>,
    dest: Option<SocketAddr>,
    datagram: Vec<u8>,
    control: &Arc<Control>,
) {
    let c = &control.counters;
    if control.blackhole.load(Ordering::Relaxed) {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let faults = control
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if control.chance(faults.drop_rate) {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let copies = if control.chance(faults.duplicate_rate) {
        c.duplicated.fetch_add(1, Ordering::Relaxed);
        2
    } else {
        1
    };
    for _ in 0..copies {
        let mut delay = faults.delay_ms + control.below(faults.jitter_ms + 1);
        if control.chance(faults.reorder_rate) {
            c.reordered.fetch_add(1, Ordering::Relaxed);
            delay += 5 + control.below(20);
        }
        c.forwarded.fetch_add(1, Ordering::Relaxed);
        if delay == 0 {
            send(socket, dest, &datagram);
            continue;
        }
        if control.delayed.fetch_add(1, Ordering::Relaxed) >= DELAYED_MAX {
            control.delayed.fetch_sub(1, Ordering::Relaxed);
            c.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (socket, datagram, control) = (socket.clone(), datagram.clone(), control.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            send(&socket, dest, &datagram);
            control.delayed.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn send(socket: &UdpSocket, dest: Option<SocketAddr>, datagram: &[u8]) {
    // UDP may drop; so may we when the socket buffer is full.
    let _ = match dest {
        Some(d) => socket.try_send_to(datagram, d),
        None => socket.try_send(datagram),
    };
}
