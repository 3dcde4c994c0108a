//! Where client connections come from: source addresses spread over 127.0.0.0/8, so a loopback
//! run is not limited to one address's ~28k ephemeral ports, and the non-blocking connect.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// How many loopback source addresses a run spreads its clients over by default. With the
/// default port range each gives ~28k ports, and at one second of `tcp_tw_reuse` delay that is
/// ~28k new connections per second per address when the clients hold the TIME_WAITs.
pub const DEFAULT_LOOPBACK_SOURCES: u8 = 32;

/// The source addresses for connections to `target`: several 127.x addresses for a loopback
/// target, none (the kernel chooses) otherwise.
pub fn sources_for(target: SocketAddr, count: u8) -> Vec<IpAddr> {
    match target.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => (1..=count.max(1))
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 10, i)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Round-robin over the source addresses.
pub struct SourceAddresses {
    addresses: Vec<IpAddr>,
    next: usize,
}

impl SourceAddresses {
    /// A rotation over `addresses`; an empty list lets the kernel choose every time.
    pub fn new(addresses: Vec<IpAddr>) -> Self {
        SourceAddresses { addresses, next: 0 }
    }

    /// The source for the next connection; `None`: no list, the kernel chooses.
    pub fn next_source(&mut self) -> Option<IpAddr> {
        if self.addresses.is_empty() {
            return None;
        }
        let address = self.addresses[self.next % self.addresses.len()];
        self.next = self.next.wrapping_add(1);
        Some(address)
    }
}

/// The TCP shape of a slow-line client's socket, set before the SYN leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowLineSocket {
    /// Largest window advertised: `SO_RCVBUF` (which the kernel doubles and floors) and
    /// `TCP_WINDOW_CLAMP` (which caps the window itself).
    pub receive_window: u32,
    /// MSS announced in the SYN (`TCP_MAXSEG`): the server sends segments no larger.
    pub mss: u32,
}

/// `setsockopt` of one int, for the options no safe wrapper (socket2, rustix) covers:
/// `TCP_WINDOW_CLAMP` and `IP_BIND_ADDRESS_NO_PORT`.
fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: u32,
) -> io::Result<()> {
    let value = value as libc::c_int;
    // SAFETY: setsockopt with a pointer to a live c_int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives a socket the shape of a slow line's end: small receive window, small MSS, and no
/// Nagle (the upload is released segment by segment at the line's pace).
fn shape_slow_line(socket: &Socket, shape: SlowLineSocket) -> io::Result<()> {
    socket.set_recv_buffer_size(shape.receive_window as usize)?;
    set_int_option(
        socket,
        libc::IPPROTO_TCP,
        libc::TCP_WINDOW_CLAMP,
        shape.receive_window,
    )?;
    socket.set_mss(shape.mss)?;
    socket.set_nodelay(true)
}

/// Starts a non-blocking connect from `source` (port chosen at connect time thanks to
/// IP_BIND_ADDRESS_NO_PORT, so binding does not reserve a port for every 4-tuple), shaped like
/// a slow line's end when `shape` is given.
pub fn connect_nonblocking(
    target: SocketAddr,
    source: Option<IpAddr>,
    shape: Option<SlowLineSocket>,
) -> io::Result<std::net::TcpStream> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Some(shape) = shape {
        shape_slow_line(&socket, shape)?;
    }
    // No TCP_NODELAY: every request goes out in one write, and only after the reply to the one
    // before it arrived (which acknowledged it), so Nagle never holds a request back; the
    // setsockopt would be one more syscall per connection.
    if let Some(source) = source {
        set_int_option(&socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_get_spread_sources_and_others_none() {
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let sources = sources_for(local, 4);
        assert_eq!(sources.len(), 4);
        assert!(sources.iter().all(|s| s.is_loopback()));
        let remote: SocketAddr = "198.18.0.2:80".parse().unwrap();
        assert!(sources_for(remote, 4).is_empty());
        let mut round = SourceAddresses::new(sources.clone());
        let drawn: Vec<_> = (0..8).filter_map(|_| round.next_source()).collect();
        assert_eq!(&drawn[..4], &sources[..]);
        assert_eq!(&drawn[4..], &sources[..]);
    }
}
