//! A connection to another Ferrite node: RESP requests and replies, for a
//! tenant's move (the stream, the cut-over) and for forwarding a moved
//! tenant's clients.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::Frame;

pub struct Peer {
    pub stream: TcpStream,
    buf: BytesMut,
}

/// RESP for one request.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        put_arg(&mut out, a);
    }
    out
}

/// RESP for a request of `args` and one more argument of `last_len`
/// bytes, up to that argument's content (which the caller sends as it is,
/// then `\r\n`).
pub fn encode_head(args: &[&[u8]], last_len: usize) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len() + 1).into_bytes();
    for a in args {
        put_arg(&mut out, a);
    }
    out.extend_from_slice(format!("${last_len}\r\n").as_bytes());
    out
}

fn put_arg(out: &mut Vec<u8>, a: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
    out.extend_from_slice(a);
    out.extend_from_slice(b"\r\n");
}

impl Peer {
    /// Connects, and authenticates with `auth` (the other node's admin
    /// password) when given.
    pub async fn connect(addr: &str, auth: Option<&str>, timeout: Duration) -> io::Result<Peer> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr)).await.map_err(|_| io::ErrorKind::TimedOut)??;
        stream.set_nodelay(true)?;
        let mut peer = Peer { stream, buf: BytesMut::with_capacity(16 * 1024) };
        if let Some(pw) = auth {
            // As `default` (the admin): accepted even where no requirepass is set.
            peer.expect_ok(&[b"AUTH", b"default", pw.as_bytes()], timeout).await?;
        }
        Ok(peer)
    }

    /// Sends one request and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> io::Result<Frame> {
        self.stream.write_all(&encode(args)).await?;
        tokio::time::timeout(timeout, self.read()).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// Sends one request; an error reply is an error.
    pub async fn expect_ok(&mut self, args: &[&[u8]], timeout: Duration) -> io::Result<Frame> {
        match self.call(args, timeout).await? {
            Frame::Error(e) => Err(io::Error::other(e)),
            f => Ok(f),
        }
    }

    /// Reads one reply.
    pub async fn read(&mut self) -> io::Result<Frame> {
        loop {
            if let Some((frame, n)) = Frame::decode(&self.buf).map_err(|e| io::Error::other(e.to_string()))? {
                let _ = self.buf.split_to(n);
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads one reply, with its bytes as they came (to pass on unchanged).
    pub async fn read_raw(&mut self) -> io::Result<(Frame, BytesMut)> {
        loop {
            if let Some((frame, n)) = Frame::decode(&self.buf).map_err(|e| io::Error::other(e.to_string()))? {
                return Ok((frame, self.buf.split_to(n)));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// A new connection to `addr` as its admin (`auth`), told first how
    /// many nodes the request it will carry passed (TENANT.HOPS `hops`, when
    /// given), in RESP3 when `resp3`.
    pub async fn open(addr: &str, auth: Option<&str>, hops: Option<&[u8]>, resp3: bool, timeout: Duration) -> io::Result<Peer> {
        let mut peer = Peer::connect(addr, auth, timeout).await?;
        if let Some(n) = hops {
            peer.expect_ok(&[b"TENANT.HOPS", n], timeout).await?;
        }
        if resp3 {
            peer.expect_ok(&[b"HELLO", b"3"], timeout).await?;
        }
        Ok(peer)
    }

    /// Sends one request and reads its reply, with its bytes as they came.
    pub async fn ask_raw(&mut self, args: &[&[u8]], timeout: Duration) -> io::Result<(Frame, BytesMut)> {
        self.stream.write_all(&encode(args)).await?;
        tokio::time::timeout(timeout, self.read_raw()).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// One request on a new connection (see [`Peer::open`]): its reply, as
    /// it came.
    pub async fn ask(
        addr: &str,
        auth: Option<&str>,
        resp3: bool,
        hops: Option<&[u8]>,
        args: &[&[u8]],
        timeout: Duration,
    ) -> io::Result<(Frame, BytesMut)> {
        Peer::open(addr, auth, hops, resp3, timeout).await?.ask_raw(args, timeout).await
    }

    /// What was read past the last reply (bytes to pass on as they are).
    pub fn take_buffered(&mut self) -> BytesMut {
        self.buf.split()
    }
}
