//! The socket operations a connection needs beyond read and write ([`Transport`]), for the
//! stream types the designs use: mio's (the `loop` and `reactors` designs) and std's (the
//! others).

use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::ioctl::{Getter, Opcode};

use crate::conn::Transport;

/// `SIOCOUTQ`, which is `TIOCOUTQ` for a TCP socket: bytes sent but not yet acknowledged.
const SIOCOUTQ: Opcode = libc::TIOCOUTQ as Opcode;

/// Bytes in `socket`'s send queue that the peer has not acknowledged (SIOCOUTQ).
pub fn unacked_bytes(socket: impl AsFd) -> io::Result<usize> {
    // SAFETY: SIOCOUTQ on a TCP socket writes one `int`, the type the getter reads back; no safe
    // wrapper (std, socket2, rustix) covers it.
    let queued = unsafe { rustix::ioctl::ioctl(socket, Getter::<SIOCOUTQ, libc::c_int>::new()) }?;
    Ok(queued.max(0) as usize)
}

impl Transport for mio::net::TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn unacked_bytes(&self) -> io::Result<usize> {
        unacked_bytes(self)
    }

    fn set_reset_on_close(&self) -> io::Result<()> {
        socket2::SockRef::from(self).set_linger(Some(Duration::ZERO))
    }

    fn set_nodelay(&self) -> io::Result<()> {
        mio::net::TcpStream::set_nodelay(self, true)
    }
}

impl Transport for std::net::TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn unacked_bytes(&self) -> io::Result<usize> {
        unacked_bytes(self)
    }

    fn set_reset_on_close(&self) -> io::Result<()> {
        socket2::SockRef::from(self).set_linger(Some(Duration::ZERO))
    }

    fn set_nodelay(&self) -> io::Result<()> {
        std::net::TcpStream::set_nodelay(self, true)
    }
}
