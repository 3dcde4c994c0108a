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

/// `SIOCOUTQNSD` (Linux 2.6.38): bytes in the send queue not sent yet (`write_seq - snd_nxt`
/// in `tcp_ioctl`), the part of SIOCOUTQ that `TCP_NOTSENT_LOWAT` limits.
const SIOCOUTQNSD: Opcode = libc::SIOCOUTQNSD as Opcode;

/// Bytes in `socket`'s send queue not sent yet (SIOCOUTQNSD).
pub fn unsent_bytes(socket: impl AsFd) -> io::Result<usize> {
    // SAFETY: SIOCOUTQNSD on a TCP socket writes one `int`, the type the getter reads back.
    let queued =
        unsafe { rustix::ioctl::ioctl(socket, Getter::<SIOCOUTQNSD, libc::c_int>::new()) }?;
    Ok(queued.max(0) as usize)
}

/// Sets `TCP_NOTSENT_LOWAT` on `socket` to `bytes` (Linux commit c9bee3b7fdec, 3.12). No
/// wrapper (std, socket2, rustix) has the option.
pub fn set_notsent_lowat(socket: impl AsFd, bytes: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = bytes as libc::c_int;
    // SAFETY: the option reads one `int` of the length passed, from a live local.
    let result = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `socket` is writable now: poll(2) for POLLOUT without waiting. Under
/// `TCP_NOTSENT_LOWAT` that is "fewer than half the mark unsent" (commit a74f0fa082b7), and a
/// socket found not writable is flagged (`SOCK_NOSPACE`, `tcp_poll`) so the kernel raises
/// EPOLLOUT once it is.
pub fn poll_writable(socket: impl AsFd) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(&socket, PollFlags::OUT)];
    poll(&mut fds, Some(&rustix::time::Timespec::default()))?;
    Ok(fds[0].revents().contains(PollFlags::OUT))
}

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

    fn unsent_bytes(&self) -> io::Result<usize> {
        unsent_bytes(self)
    }

    fn set_notsent_lowat(&self, bytes: u32) -> io::Result<()> {
        set_notsent_lowat(self, bytes)
    }

    fn poll_writable(&self) -> io::Result<bool> {
        poll_writable(self)
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

    fn unsent_bytes(&self) -> io::Result<usize> {
        unsent_bytes(self)
    }

    fn set_notsent_lowat(&self, bytes: u32) -> io::Result<()> {
        set_notsent_lowat(self, bytes)
    }

    fn poll_writable(&self) -> io::Result<bool> {
        poll_writable(self)
    }
}
