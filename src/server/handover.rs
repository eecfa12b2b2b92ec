//! Handing a moved tenant's client socket itself to the tenant's new node,
//! when that node runs on this machine (an address on loopback): instead
//! of relaying every request and reply through the old node (two more
//! socket round trips per request), the old node passes the connection's
//! file descriptor over a Unix socket (`SCM_RIGHTS`) with what recreates
//! the client's state there, and steps aside. The client keeps its TCP
//! connection and sees nothing; its requests no longer pass the old node.
//!
//! Every node listens on the abstract Unix socket named after its TCP port
//! ([`name_for`]). A handover is accepted only from a process of the same
//! user (`SO_PEERCRED`) that knows the node's admin password or the
//! `[cluster] secret`, and only when the recreated state binds the client
//! to the tenant; otherwise the old node relays as between machines.
//!
//! The message: a 4-byte length, then (in the ABI's encoding) the password,
//! the tenant, the setup requests (their replies are dropped) and the
//! client's unread input (run as its own: a blocked command again, then
//! what the old node had read and not run). The answer is one byte.

use std::os::fd::{FromRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::sync::Arc;
use std::time::Duration;

use ferrite_policy_abi::{Reader, Writer};
use sendfd::{RecvWithFd, SendWithFd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::state::ServerState;

/// The largest message accepted: setup requests and a query buffer.
const MAX_MESSAGE: usize = 1 << 30;
/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(5);
const ACCEPTED: u8 = b'+';
const REFUSED: u8 = b'-';

/// The abstract socket name of the node listening on TCP port `port`.
pub fn name_for(port: u16) -> String {
    format!("ferrite-handover-{port}")
}

fn address(port: u16) -> std::io::Result<std::os::unix::net::SocketAddr> {
    std::os::unix::net::SocketAddr::from_abstract_name(name_for(port).as_bytes())
}

/// The port of a node address on this machine (a loopback address), the
/// only kind a socket can be handed to.
pub fn local_port(addr: &str) -> Option<u16> {
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    addr.ip().is_loopback().then_some(addr.port())
}

/// What the old node sends with the socket.
pub struct Handover<'a> {
    pub auth: &'a str,
    pub tenant: &'a str,
    pub setup: Vec<u8>,
    pub input: Vec<u8>,
}

/// How a handover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The new node serves the client: let go of the socket without
    /// touching the connection.
    Adopted,
    /// Refused, or not all sent: the caller still serves the client.
    NotTaken,
    /// All sent, no answer: the new node may be serving the client, so the
    /// caller must not read it too (it closes its copy; if nobody took the
    /// socket, the client sees the connection close).
    Unknown,
}

/// Hands the client socket `fd` to the node on this machine's `port`.
pub async fn send(port: u16, fd: RawFd, h: &Handover<'_>) -> Outcome {
    let mut all_sent = false;
    let outcome = tokio::time::timeout(TIMEOUT, try_send(port, fd, h, &mut all_sent)).await;
    match outcome {
        Ok(Ok(true)) => Outcome::Adopted,
        Ok(Ok(false)) => Outcome::NotTaken,
        Ok(Err(_)) | Err(_) if all_sent => {
            tracing::warn!(port, "a socket handover went unanswered; closing the connection here");
            Outcome::Unknown
        }
        Ok(Err(e)) => {
            tracing::debug!(port, "socket handover failed: {e}; relaying instead");
            Outcome::NotTaken
        }
        Err(_) => Outcome::NotTaken,
    }
}

async fn try_send(port: u16, fd: RawFd, h: &Handover<'_>, all_sent: &mut bool) -> std::io::Result<bool> {
    let std = std::os::unix::net::UnixStream::connect_addr(&address(port)?)?;
    std.set_nonblocking(true)?;
    let mut stream = UnixStream::from_std(std)?;
    let mut w = Writer::with_capacity(h.setup.len() + h.input.len() + 64);
    w.str(h.auth).str(h.tenant).bytes(&h.setup).bytes(&h.input);
    let mut message = (w.buf.len() as u32).to_le_bytes().to_vec();
    message.extend_from_slice(&w.buf);
    // The descriptor rides with the first bytes; the rest follows as a stream.
    let first = loop {
        stream.writable().await?;
        match stream.send_with_fd(&message, &[fd]) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    stream.write_all(&message[first..]).await?;
    *all_sent = true;
    let mut answer = [0u8];
    stream.read_exact(&mut answer).await?;
    Ok(answer[0] == ACCEPTED)
}

/// Listens for handovers to the node on TCP port `port` until shutdown.
pub async fn listen(state: Arc<ServerState>, port: u16) {
    let listener = match std::os::unix::net::UnixListener::bind_addr(&match address(port) {
        Ok(a) => a,
        Err(_) => return,
    })
    .and_then(|l| {
        l.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(port, "no socket handover (tenants moved here from this machine are relayed): {e}");
            return;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin on the error.
                tracing::debug!("handover accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(TIMEOUT, receive(state, stream)).await.unwrap_or_else(|e| Err(e.into())) {
                tracing::debug!("a socket handover was not taken: {e}");
            }
        });
    }
}

async fn receive(state: Arc<ServerState>, mut stream: UnixStream) -> std::io::Result<()> {
    let same_user = stream.peer_cred().is_ok_and(|c| c.uid() == own_uid());
    if !same_user {
        return Err(std::io::Error::other("from another user"));
    }
    let (mut message, fd) = read_message(&mut stream).await?;
    let Some(fd) = fd else { return Err(std::io::Error::other("no socket came with it")) };
    // SAFETY: SCM_RIGHTS gave this process a new descriptor that nothing
    // else owns; the stream closes it when dropped.
    let socket = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let decoded = (|| {
        let mut r = Reader::new(&message);
        let (auth, tenant, setup, input) = (r.string()?, r.string()?, r.bytes()?.to_vec(), r.bytes()?.to_vec());
        r.finish()?;
        Ok::<_, ferrite_policy_abi::DecodeError>((auth, tenant, setup, input))
    })();
    message.clear();
    let Ok((auth, tenant, setup, input)) = decoded else { return refuse(&mut stream, "a malformed message").await };
    if !crate::commands::is_admin_password(&state, auth.as_bytes()) {
        return refuse(&mut stream, "a wrong password").await;
    }
    let Some(adopted) = super::connection::adopt(&state, socket, &setup, &tenant) else {
        return refuse(&mut stream, "a state that does not bind the tenant here").await;
    };
    stream.write_all(&[ACCEPTED]).await?;
    tracing::debug!(tenant, "took over a forwarded client's socket");
    tokio::spawn(adopted.serve(input));
    Ok(())
}

async fn refuse(stream: &mut UnixStream, why: &str) -> std::io::Result<()> {
    let _ = stream.write_all(&[REFUSED]).await;
    Err(std::io::Error::other(format!("refused: {why}")))
}

/// Reads the length-prefixed message and the descriptor sent with it.
async fn read_message(stream: &mut UnixStream) -> std::io::Result<(Vec<u8>, Option<RawFd>)> {
    let mut head = vec![0u8; 64 * 1024];
    let mut fds = [-1 as RawFd];
    let (got, nfds) = loop {
        stream.readable().await?;
        match stream.recv_with_fd(&mut head, &mut fds) {
            Ok(r) => break r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    let fd = (nfds == 1).then_some(fds[0]);
    let fail = |why: &str| {
        if let Some(fd) = fd {
            // SAFETY: received above and owned by nothing else.
            drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        }
        Err(std::io::Error::other(why.to_string()))
    };
    if got < 4 {
        return fail("cut short");
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_MESSAGE {
        return fail("too long");
    }
    let mut message = head[4..got.min(4 + len)].to_vec();
    if got > 4 + len {
        return fail("more than announced");
    }
    message.resize(len, 0);
    let have = got - 4;
    if let Err(e) = stream.read_exact(&mut message[have..]).await {
        return fail(&e.to_string());
    }
    Ok((message, fd))
}

/// This process's user id (the owner of its /proc entry).
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}
