//! Pub/sub: who listens to which channel or pattern, and delivery.
//!
//! Each connection owns a queue of messages; PUBLISH pushes into the queues
//! of matching subscribers without waiting. A subscriber whose queue passes
//! the pub/sub class of `client-output-buffer-limit` in bytes (the hard
//! limit, or the soft limit for longer than its seconds) is disconnected, as
//! Redis does, so a slow reader cannot grow the server's memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::config::ClassLimit;
use crate::store::glob;

/// Messages a subscriber may have queued before it is disconnected, whatever
/// their size (the byte limits usually act first).
pub const MAX_PENDING: usize = 64 * 1024;

/// What a message costs its subscriber's queue besides channel and payload.
const MESSAGE_OVERHEAD: usize = 64;

/// What a queued message is, which decides how its receiver renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PUBLISH to a channel (or pattern, when `pattern` is set).
    Publish,
    /// SPUBLISH to a shard channel.
    Shard,
    /// CLIENT TRACKING: `payload` is the RESP array of invalidated keys,
    /// or empty for "everything" (a flush), sent as a null.
    Invalidate,
    /// MONITOR: `payload` is the whole line, as sent.
    Monitor,
    /// CLIENT TRACKING: the redirect target is gone; `payload` is its id in
    /// decimal.
    RedirectBroken,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Kind,
    pub pattern: Option<Arc<[u8]>>,
    pub channel: Arc<[u8]>,
    pub payload: Arc<[u8]>,
}

impl Message {
    /// The bytes it holds in a queue (payloads shared between subscribers
    /// count for each, as each Redis client's output buffer holds a copy).
    pub fn size(&self) -> usize {
        self.channel.len() + self.payload.len() + self.pattern.as_ref().map_or(0, |p| p.len()) + MESSAGE_OVERHEAD
    }
}

/// A queue's byte count, shared by both ends.
#[derive(Debug, Default)]
pub struct Pending {
    /// Above zero from before a message is queued until it is taken, so
    /// the receiver polls the channel only when this says there is mail.
    bytes: AtomicUsize,
    /// When the queue went above the soft limit (Unix ms; 0: it is not).
    over_soft_since: AtomicU64,
    /// The receiver, waiting while `bytes` is zero.
    waker: atomic_waker::AtomicWaker,
}

impl Pending {
    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    /// Adds a message; false when that puts the queue over `limit` (the
    /// subscriber is then to be disconnected).
    fn admit(&self, size: usize, limit: ClassLimit, now_ms: u64) -> bool {
        let bytes = (self.bytes.fetch_add(size, SeqCst) + size) as u64;
        if limit.hard > 0 && bytes > limit.hard {
            return false;
        }
        if limit.soft > 0 && bytes > limit.soft {
            let since = self.over_soft_since.load(Relaxed);
            if since == 0 {
                self.over_soft_since.store(now_ms, Relaxed);
            } else if now_ms.saturating_sub(since) >= limit.soft_secs * 1000 {
                return false;
            }
        } else {
            self.over_soft_since.store(0, Relaxed);
        }
        true
    }
}

#[derive(Debug, Clone)]
pub struct MessageSender {
    tx: mpsc::Sender<Message>,
    pub pending: Arc<Pending>,
}

impl MessageSender {
    /// True once the receiving connection has gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[derive(Debug)]
pub struct MessageReceiver {
    rx: mpsc::Receiver<Message>,
    pub pending: Arc<Pending>,
}

impl MessageReceiver {
    /// The next message. While none is counted in, a wait is a load and a
    /// waker registration: the connection's loop makes this anew on every
    /// pass, and polling the channel itself each time cost more than the
    /// rest of the wait together.
    pub async fn recv(&mut self) -> Option<Message> {
        let m = std::future::poll_fn(|cx| {
            std::task::ready!(crate::wake::poll_until(&self.pending.waker, cx, || self.pending.bytes.load(SeqCst) > 0));
            self.rx.poll_recv(cx)
        })
        .await?;
        self.pending.bytes.fetch_sub(m.size(), Relaxed);
        Some(m)
    }

    pub fn try_recv(&mut self) -> Option<Message> {
        let m = self.rx.try_recv().ok()?;
        self.pending.bytes.fetch_sub(m.size(), Relaxed);
        Some(m)
    }
}

pub fn new_channel() -> (MessageSender, MessageReceiver) {
    let (tx, rx) = mpsc::channel(MAX_PENDING);
    let pending = Arc::new(Pending::default());
    (MessageSender { tx, pending: pending.clone() }, MessageReceiver { rx, pending })
}

/// A subscriber: its client id, queue, and how to disconnect it if it lags.
#[derive(Clone)]
pub struct Subscriber {
    pub id: u64,
    pub tx: MessageSender,
    /// Disconnects the subscriber (when its queue is full).
    pub kill: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subscriber({})", self.id)
    }
}

type Registry = RwLock<HashMap<Vec<u8>, HashMap<u64, Subscriber>>>;

#[derive(Debug, Default)]
pub struct PubSub {
    channels: Registry,
    patterns: Registry,
    /// Shard channels (SSUBSCRIBE): a namespace of their own that PUBLISH
    /// and patterns never reach. They get no keyspace events, so they are
    /// not in `subscriptions`.
    shard: Registry,
    /// Subscriptions of either kind: what keyspace events check first, so
    /// that with nobody listening they format no channel name.
    subscriptions: AtomicUsize,
}

fn add(reg: &Registry, name: &[u8], sub: Subscriber) -> bool {
    reg.write().entry(name.to_vec()).or_default().insert(sub.id, sub).is_none()
}

fn remove(reg: &Registry, name: &[u8], id: u64) -> bool {
    let mut map = reg.write();
    let Some(subs) = map.get_mut(name) else { return false };
    let removed = subs.remove(&id).is_some();
    if subs.is_empty() {
        map.remove(name);
    }
    removed
}

/// How PUBLISH treats subscribers' queues: their byte limit, and now.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    pub limit: ClassLimit,
    pub now_ms: u64,
}

/// Queues `msg` for `sub`; a subscriber whose queue it takes past the
/// limit is disconnected. False when it was not queued.
pub fn deliver(sub: &Subscriber, msg: Message, how: Delivery) -> bool {
    let size = msg.size();
    if !sub.tx.pending.admit(size, how.limit, how.now_ms) {
        sub.tx.pending.bytes.fetch_sub(size, Relaxed);
        (sub.kill)();
        return false;
    }
    match sub.tx.tx.try_send(msg) {
        Ok(()) => {
            sub.tx.pending.waker.wake();
            true
        }
        Err(e) => {
            sub.tx.pending.bytes.fetch_sub(size, Relaxed);
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                (sub.kill)();
            }
            false
        }
    }
}

impl PubSub {
    pub fn subscribe(&self, channel: &[u8], sub: Subscriber) {
        self.counted(add(&self.channels, channel, sub), true);
    }

    pub fn unsubscribe(&self, channel: &[u8], id: u64) {
        self.counted(remove(&self.channels, channel, id), false);
    }

    pub fn psubscribe(&self, pattern: &[u8], sub: Subscriber) {
        self.counted(add(&self.patterns, pattern, sub), true);
    }

    pub fn punsubscribe(&self, pattern: &[u8], id: u64) {
        self.counted(remove(&self.patterns, pattern, id), false);
    }

    fn counted(&self, changed: bool, added: bool) {
        match (changed, added) {
            (true, true) => self.subscriptions.fetch_add(1, Relaxed),
            (true, false) => self.subscriptions.fetch_sub(1, Relaxed),
            _ => 0,
        };
    }

    /// True when nobody is subscribed to any channel or pattern.
    pub fn is_idle(&self) -> bool {
        self.subscriptions.load(Relaxed) == 0
    }

    /// Delivers to channel subscribers, then pattern subscribers; returns
    /// how many received it.
    pub fn publish(&self, channel: &[u8], payload: &[u8], how: Delivery) -> usize {
        let channel: Arc<[u8]> = Arc::from(channel);
        let payload: Arc<[u8]> = Arc::from(payload);
        let mut n = 0;
        if let Some(subs) = self.channels.read().get(&channel[..]) {
            for s in subs.values() {
                let m = Message { kind: Kind::Publish, pattern: None, channel: channel.clone(), payload: payload.clone() };
                n += deliver(s, m, how) as usize;
            }
        }
        for (pat, subs) in self.patterns.read().iter() {
            if glob::matches(pat, &channel, false) {
                let pat: Arc<[u8]> = Arc::from(&pat[..]);
                for s in subs.values() {
                    let m = Message { kind: Kind::Publish, pattern: Some(pat.clone()), channel: channel.clone(), payload: payload.clone() };
                    n += deliver(s, m, how) as usize;
                }
            }
        }
        n
    }

    /// Active channels (with at least one subscriber) matching `pattern`.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        let map = self.channels.read();
        let mut v: Vec<_> = map.keys().filter(|c| pattern.is_none_or(|p| glob::matches(p, c, false))).cloned().collect();
        v.sort();
        v
    }

    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.read().get(channel).map_or(0, |s| s.len())
    }

    /// Channels with a subscriber (`PUBSUB CHANNELS` without copying them).
    pub fn channel_count(&self) -> usize {
        self.channels.read().len()
    }

    pub fn numpat(&self) -> usize {
        self.patterns.read().len()
    }

    pub fn ssubscribe(&self, channel: &[u8], sub: Subscriber) {
        add(&self.shard, channel, sub);
    }

    pub fn sunsubscribe(&self, channel: &[u8], id: u64) {
        remove(&self.shard, channel, id);
    }

    /// SPUBLISH: delivers to the shard channel's subscribers only (shard
    /// pub/sub has no patterns); returns how many received it.
    pub fn spublish(&self, channel: &[u8], payload: &[u8], how: Delivery) -> usize {
        let map = self.shard.read();
        let Some(subs) = map.get(channel) else { return 0 };
        let channel: Arc<[u8]> = Arc::from(channel);
        let payload: Arc<[u8]> = Arc::from(payload);
        subs.values()
            .map(|s| {
                let m = Message { kind: Kind::Shard, pattern: None, channel: channel.clone(), payload: payload.clone() };
                deliver(s, m, how) as usize
            })
            .sum()
    }

    /// Active shard channels matching `pattern`.
    pub fn shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        let map = self.shard.read();
        let mut v: Vec<_> = map.keys().filter(|c| pattern.is_none_or(|p| glob::matches(p, c, false))).cloned().collect();
        v.sort();
        v
    }

    pub fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.shard.read().get(channel).map_or(0, |s| s.len())
    }
}
