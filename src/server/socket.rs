//! A non-blocking TCP socket driven by tokio's reactor, with one syscall
//! saved per request.
//!
//! tokio's `TcpStream` only learns a socket is drained when a read fails
//! with `EAGAIN`, so a request/reply exchange costs read, write and a
//! wasted read. Epoll here is edge-triggered: new data always raises a new
//! event. So after a short read (fewer bytes than we had room for) the
//! socket is known to be drained and we clear readiness ourselves.

use std::io::{self, Write};
use std::net::TcpStream as StdStream;

use bytes::BytesMut;
use socket2::SockRef;
use tokio::io::unix::AsyncFd;

pub struct Socket {
    fd: AsyncFd<StdStream>,
}

impl Socket {
    pub fn new(stream: tokio::net::TcpStream) -> io::Result<Socket> {
        let std = stream.into_std()?;
        std.set_nonblocking(true)?;
        // SAFETY: the AsyncFd owns the std stream, whose fd stays open and
        // unchanged until the AsyncFd (and the stream with it) is dropped.
        let fd = unsafe { AsyncFd::register(std) }.map_err(|e| e.into_parts().1)?;
        Ok(Socket { fd })
    }

    /// The descriptor, to hand the connection to another process.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd.get_ref().as_raw_fd()
    }

    /// Reads what is available into the spare capacity of `buf`; 0 means EOF.
    pub async fn read_into(&self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            // The read direction's one waker slot (this task is the only
            // reader), not `readable()`'s waiter list: a lock fewer per wait.
            let mut guard = std::future::poll_fn(|cx| self.fd.poll_read_ready(cx)).await?;
            let spare = buf.spare_capacity_mut();
            let room = spare.len();
            match guard.try_io(|s| SockRef::from(s.get_ref()).recv(spare)) {
                Ok(Ok(n)) => {
                    if n < room {
                        guard.clear_ready();
                    }
                    // SAFETY: recv initialised the first n bytes of the spare capacity.
                    unsafe { buf.set_len(buf.len() + n) };
                    return Ok(n);
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes what the socket takes right now, without waiting: the bytes
    /// written (0 when it would block).
    pub fn write_now(&self, data: &[u8]) -> io::Result<usize> {
        let mut stream = self.fd.get_ref();
        match stream.write(data) {
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| s.get_ref().write(data)) {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}
