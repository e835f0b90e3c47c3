//! Bookkeeping of the HTTPS listener's connections, so that no peer can starve the others:
//!
//! * [`Table`]: the cap on open connections and each peer's (IP address's) share of it. A
//!   peer over its share is refused at accept; when the cap is reached, a newcomer from a
//!   lighter peer closes the newest connection of the peer holding the most.
//! * [`Activity`]: what a connection is doing (handshaking, waiting for its first request,
//!   reading a request head, answering, idle), from which the accept loop's per-connection
//!   task derives its deadline: first request, request head, idle.
//! * [`Io`]: the TCP stream under TLS; it reports bytes read to the [`Activity`] and, when
//!   hyper closes the connection, half-closes it and reads on (discarding, bounded in bytes and
//!   time) until the client closes too, so that a client still uploading (e.g. an oversized
//!   body that was answered early) reads the answer instead of a reset.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// Longest a closing connection reads (and discards) what the client still sends.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(2);
/// Most bytes a closing connection reads and discards.
pub(crate) const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Open connections, by peer address.
pub(crate) struct Table {
    inner: Mutex<Inner>,
    max_total: usize,
    max_per_peer: usize,
}

struct Inner {
    total: usize,
    next_id: u64,
    /// Each peer's connections, oldest first.
    peers: HashMap<IpAddr, Vec<(u64, Arc<Activity>)>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The peer already holds its share of the connections.
    PeerShare,
    /// Every connection is taken and the peer holds as many as any other.
    Full,
}

impl Refused {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refused::PeerShare => "peer_share",
            Refused::Full => "full",
        }
    }
}

/// A connection's place in the [`Table`]; leaving it (drop) frees the place.
pub(crate) struct Slot {
    table: Arc<Table>,
    peer: IpAddr,
    id: u64,
    /// What the connection is doing.
    pub(crate) activity: Arc<Activity>,
}

impl Table {
    /// At most `max_total` connections, at most `max_per_peer` from one address.
    pub(crate) fn new(max_total: usize, max_per_peer: usize) -> Arc<Table> {
        let max_total = max_total.max(1);
        Arc::new(Table {
            inner: Mutex::new(Inner {
                total: 0,
                next_id: 0,
                peers: HashMap::new(),
            }),
            max_total,
            max_per_peer: max_per_peer.clamp(1, max_total),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `peer`. When every place is taken, the newest connection of
    /// the peer holding the most is told to close (its place is freed at once) if that peer
    /// holds more than `peer` would; the evicted peer is returned for the log.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<(Slot, Option<IpAddr>), Refused> {
        let mut inner = self.lock();
        let held = inner.peers.get(&peer).map_or(0, Vec::len);
        if held >= self.max_per_peer {
            return Err(Refused::PeerShare);
        }
        let mut evicted = None;
        if inner.total >= self.max_total {
            let heaviest = inner
                .peers
                .iter()
                .max_by_key(|(_, conns)| conns.len())
                .map(|(ip, conns)| (*ip, conns.len()));
            match heaviest {
                Some((victim, count)) if count > held + 1 => {
                    if let Some(conns) = inner.peers.get_mut(&victim)
                        && let Some((_, activity)) = conns.pop()
                    {
                        activity.close();
                        if conns.is_empty() {
                            inner.peers.remove(&victim);
                        }
                        inner.total -= 1;
                        evicted = Some(victim);
                    }
                }
                _ => return Err(Refused::Full),
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.total += 1;
        let activity = Arc::new(Activity::new());
        inner
            .peers
            .entry(peer)
            .or_default()
            .push((id, Arc::clone(&activity)));
        Ok((
            Slot {
                table: Arc::clone(self),
                peer,
                id,
                activity,
            },
            evicted,
        ))
    }

    /// Tells every open connection to close (server shutdown).
    pub(crate) fn close_all(&self) {
        let inner = self.lock();
        for (_, activity) in inner.peers.values().flatten() {
            activity.close();
        }
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.table.lock();
        let Some(conns) = inner.peers.get_mut(&self.peer) else {
            return;
        };
        // An evicted connection has already given its place up.
        let Some(at) = conns.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        conns.remove(at);
        if conns.is_empty() {
            inner.peers.remove(&self.peer);
        }
        inner.total -= 1;
    }
}

/// The per-connection time limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// From the end of the TLS handshake to the first request's complete head.
    pub(crate) first_request: Duration,
    /// From a request head's first byte to its last (HTTP/1.1).
    pub(crate) header_read: Duration,
    /// With no request open, from the last answer to closing.
    pub(crate) idle: Duration,
}

/// Why a connection is closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// No request within the first-request timeout.
    NoRequest,
    /// A request head took longer than the header-read timeout.
    SlowHead,
    /// Idle for the idle timeout.
    Idle,
    /// Told to (eviction or shutdown).
    Told,
}

impl Close {
    /// Whether the connection is closed at once rather than gracefully: a peer that never
    /// completed a request, or is sending a head too slowly, gets no grace.
    pub(crate) fn at_once(self) -> bool {
        matches!(self, Close::NoRequest | Close::SlowHead)
    }

    /// The metric label (`Told` is counted as an eviction by the accept loop, or is a
    /// shutdown, which is not counted).
    pub(crate) fn label(self) -> Option<&'static str> {
        match self {
            Close::NoRequest => Some("first_request_timeout"),
            Close::SlowHead => Some("header_timeout"),
            Close::Idle => Some("idle"),
            Close::Told => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Close::NoRequest => "no request within the first-request timeout",
            Close::SlowHead => "request head not received within the header-read timeout",
            Close::Idle => "idle",
            Close::Told => "closed by the server (connection cap or shutdown)",
        }
    }
}

/// What a connection is doing; shared by its [`Io`], its service and its task.
pub(crate) struct Activity {
    state: Mutex<State>,
    /// Wakes the connection's task when the state changed or it is told to close.
    changed: Notify,
    closing: AtomicBool,
}

struct State {
    phase: Phase,
    /// Requests being answered.
    in_flight: usize,
    /// Requests received so far.
    requests: u64,
    /// When the connection last became idle (handshake done, or last answer).
    idle_since: Instant,
    /// HTTP/1.1: when the first byte after the last answer arrived, if it did.
    head_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Http1,
    Http2,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new(State {
                phase: Phase::Handshake,
                in_flight: 0,
                requests: 0,
                idle_since: Instant::now(),
                head_since: None,
            }),
            changed: Notify::new(),
            closing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The TLS handshake is done; `h2` when ALPN chose HTTP/2.
    pub(crate) fn established(&self, h2: bool) {
        let mut state = self.lock();
        state.phase = if h2 { Phase::Http2 } else { Phase::Http1 };
        state.idle_since = Instant::now();
    }

    /// Bytes arrived from the client.
    fn bytes_read(&self) {
        let mut state = self.lock();
        // HTTP/2 carries control frames between requests; only HTTP/1.1 bytes between
        // answers are the start of a request head.
        if state.phase == Phase::Http1 && state.in_flight == 0 && state.head_since.is_none() {
            state.head_since = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request's head is complete and it is being answered until the guard is dropped;
    /// also when it arrived: its first byte (HTTP/1.1, between requests), else now.
    pub(crate) fn request(self: &Arc<Self>) -> (RequestGuard, Instant) {
        let mut state = self.lock();
        state.in_flight += 1;
        state.requests += 1;
        let arrived = state.head_since.take().unwrap_or_else(Instant::now);
        (RequestGuard(Arc::clone(self)), arrived)
    }

    /// Tells the connection to close (gracefully if a request is open).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Whether the connection was told to close.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Whether a request is being answered.
    pub(crate) fn busy(&self) -> bool {
        self.lock().in_flight > 0
    }

    /// Completes when the state changed or the connection was told to close.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// When, and why, the connection is to be closed if nothing changes before.
    pub(crate) fn deadline(&self, timeouts: &Timeouts) -> Option<(Instant, Close)> {
        let state = self.lock();
        if state.phase == Phase::Handshake || state.in_flight > 0 {
            return None;
        }
        let mut deadline = if state.requests == 0 {
            (state.idle_since + timeouts.first_request, Close::NoRequest)
        } else {
            (state.idle_since + timeouts.idle, Close::Idle)
        };
        if let Some(since) = state.head_since {
            let head = since + timeouts.header_read;
            if head < deadline.0 {
                deadline = (head, Close::SlowHead);
            }
        }
        Some(deadline)
    }
}

/// A request being answered ([`Activity::request`]).
pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.head_since = None;
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

/// The TCP stream of a connection: reports reads to its [`Activity`] and closes lingering.
pub(crate) struct Io<T> {
    inner: T,
    activity: Arc<Activity>,
    linger: Option<Linger>,
}

struct Linger {
    until: Pin<Box<Sleep>>,
    discarded: usize,
}

impl<T> Io<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Io<T> {
        Io {
            inner,
            activity,
            linger: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if result.is_ok() && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Half-closes, then reads and discards what the client still sends until it closes too
    /// (at most [`LINGER_TIME`] and [`LINGER_BYTES`]): closing a socket with unread data sends
    /// a reset, which can destroy an answer the client has not read yet.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            if let Err(e) = ready!(Pin::new(&mut this.inner).poll_shutdown(cx)) {
                return Poll::Ready(Err(e));
            }
            this.linger = Some(Linger {
                until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                discarded: 0,
            });
        }
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    linger.discarded += buf.filled().len();
                    if linger.discarded >= LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                // End of stream or an error: the client is gone.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match linger.until.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Ok(())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_peer_over_its_share_is_refused_while_another_is_admitted() {
        let table = Table::new(8, 2);
        let a1 = table.admit(ip(1));
        let a2 = table.admit(ip(1));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(table.admit(ip(1)).err(), Some(Refused::PeerShare));
        let b = table.admit(ip(2));
        assert!(b.is_ok());
        assert_eq!(table.open(), 3);
        drop(a1);
        assert_eq!(table.open(), 2);
        assert!(
            table.admit(ip(1)).is_ok(),
            "a freed place can be taken again"
        );
    }

    #[test]
    fn when_full_the_newest_connection_of_the_heaviest_peer_is_closed() {
        let table = Table::new(4, 3);
        let heavy: Vec<_> = (0..3).map(|_| table.admit(ip(1)).unwrap().0).collect();
        let light = table.admit(ip(2)).unwrap().0;
        assert_eq!(table.open(), 4);
        let (newcomer, evicted) = table.admit(ip(3)).unwrap();
        assert_eq!(evicted, Some(ip(1)));
        assert!(heavy[2].activity.is_closing(), "the newest of the heaviest");
        assert!(!heavy[0].activity.is_closing() && !heavy[1].activity.is_closing());
        assert!(!light.activity.is_closing());
        assert_eq!(table.open(), 4);
        // The evicted connection's task ends later; its place is not freed twice.
        drop(heavy);
        assert_eq!(table.open(), 2);
        drop(newcomer);
        drop(light);
        assert_eq!(table.open(), 0);
    }

    #[test]
    fn when_full_a_peer_as_heavy_as_any_other_is_refused() {
        let table = Table::new(2, 2);
        let _a = table.admit(ip(1)).unwrap();
        let _b = table.admit(ip(2)).unwrap();
        assert_eq!(table.admit(ip(3)).err(), Some(Refused::Full));
        assert_eq!(table.admit(ip(1)).err(), Some(Refused::Full));
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_connection_through_its_phases() {
        let timeouts = Timeouts {
            first_request: Duration::from_secs(3),
            header_read: Duration::from_secs(5),
            idle: Duration::from_secs(95),
        };
        let activity = Arc::new(Activity::new());
        assert!(
            activity.deadline(&timeouts).is_none(),
            "handshake: its own timeout"
        );
        activity.established(false);
        let start = Instant::now();
        assert_eq!(
            activity.deadline(&timeouts),
            Some((start + timeouts.first_request, Close::NoRequest))
        );
        let (guard, _) = activity.request();
        assert!(activity.deadline(&timeouts).is_none(), "answering");
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(guard);
        let answered = Instant::now();
        assert_eq!(
            activity.deadline(&timeouts),
            Some((answered + timeouts.idle, Close::Idle))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        activity.bytes_read();
        let first_byte = Instant::now();
        assert_eq!(
            activity.deadline(&timeouts),
            Some((first_byte + timeouts.header_read, Close::SlowHead))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_guard, arrived) = activity.request();
        assert_eq!(arrived, first_byte, "a request arrives with its first byte");
        // HTTP/2 control frames are not request heads.
        let h2 = Arc::new(Activity::new());
        h2.established(true);
        drop(h2.request().0);
        h2.bytes_read();
        assert_eq!(
            h2.deadline(&timeouts).map(|(_, why)| why),
            Some(Close::Idle)
        );
    }
}
