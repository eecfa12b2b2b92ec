//! Pub/sub: who listens to which channel or pattern, and delivery.
//!
//! Each connection owns a bounded queue of messages; PUBLISH pushes into the
//! queues of matching subscribers without waiting. A subscriber that falls
//! too far behind is disconnected, as Redis does past its pub/sub output
//! buffer limit, so a slow reader cannot grow the server's memory.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::store::glob;

/// Messages a subscriber may have queued before it is disconnected.
pub const MAX_PENDING: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Message {
    pub pattern: Option<Arc<[u8]>>,
    pub channel: Arc<[u8]>,
    pub payload: Arc<[u8]>,
}

pub type MessageSender = mpsc::Sender<Message>;
pub type MessageReceiver = mpsc::Receiver<Message>;

pub fn new_channel() -> (MessageSender, MessageReceiver) {
    mpsc::channel(MAX_PENDING)
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
}

fn add(reg: &Registry, name: &[u8], sub: Subscriber) {
    reg.write().entry(name.to_vec()).or_default().insert(sub.id, sub);
}

fn remove(reg: &Registry, name: &[u8], id: u64) {
    let mut map = reg.write();
    if let Some(subs) = map.get_mut(name) {
        subs.remove(&id);
        if subs.is_empty() {
            map.remove(name);
        }
    }
}

fn deliver(sub: &Subscriber, msg: Message) -> bool {
    match sub.tx.try_send(msg) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            (sub.kill)();
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

impl PubSub {
    pub fn subscribe(&self, channel: &[u8], sub: Subscriber) {
        add(&self.channels, channel, sub);
    }

    pub fn unsubscribe(&self, channel: &[u8], id: u64) {
        remove(&self.channels, channel, id);
    }

    pub fn psubscribe(&self, pattern: &[u8], sub: Subscriber) {
        add(&self.patterns, pattern, sub);
    }

    pub fn punsubscribe(&self, pattern: &[u8], id: u64) {
        remove(&self.patterns, pattern, id);
    }

    /// Delivers to channel subscribers, then pattern subscribers; returns
    /// how many received it.
    pub fn publish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let channel: Arc<[u8]> = Arc::from(channel);
        let payload: Arc<[u8]> = Arc::from(payload);
        let mut n = 0;
        if let Some(subs) = self.channels.read().get(&channel[..]) {
            for s in subs.values() {
                let m = Message { pattern: None, channel: channel.clone(), payload: payload.clone() };
                n += deliver(s, m) as usize;
            }
        }
        for (pat, subs) in self.patterns.read().iter() {
            if glob::matches(pat, &channel, false) {
                let pat: Arc<[u8]> = Arc::from(&pat[..]);
                for s in subs.values() {
                    let m = Message { pattern: Some(pat.clone()), channel: channel.clone(), payload: payload.clone() };
                    n += deliver(s, m) as usize;
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

    pub fn numpat(&self) -> usize {
        self.patterns.read().len()
    }
}
