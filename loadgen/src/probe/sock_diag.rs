//! TIME_WAIT sockets through NETLINK_SOCK_DIAG (what `ss` uses), for IPv4 and IPv6, and their
//! split by side for one server port: server side when the local port is the server's (the server
//! closed first), client side when the remote port is (the client closed first).
//!
//! Cost is what matters here: a sampler dumps every 250 ms while 10,000-300,000 TIME_WAITs exist.
//! Measured, about 90 % of a dump's CPU is the kernel walking its connection hash table, which it
//! does once per request over every socket of every namespace sharing that table. Hence:
//! - one walk for both families: the request is the older `TCPDIAG_GETSOCK` form, which the kernel
//!   runs with `AF_UNSPEC` (the per-family `SOCK_DIAG_BY_FAMILY` form walks the table twice); if a
//!   kernel refuses it, dumps fall back to one `SOCK_DIAG_BY_FAMILY` request per family;
//! - a kernel-side filter (`inet_diag` bytecode: source or destination port equal to the server's)
//!   so that a shared machine's unrelated TIME_WAITs never cross into user space;
//! - framing done here over one reused 64 KiB buffer, with no allocation per socket.
//!
//! `netlink-packet-sock-diag` builds the per-family request and parses every socket record; it has
//! no type for the older request nor for the bytecode attribute, whose few bytes are written here.
//! A dump sees the network namespace of the calling thread.
//!
//! Each socket comes with what is left of its TIME_WAIT timer (`idiag_expires`, which the crate
//! does not keep for this timer, so it is read here), from which `time_wait_origin` tells when it
//! began.
//!
//! Not here: counting sockets by state for the whole namespace (`sockstat`), and entering the
//! server's namespace for its side of the split mode (`sampler`).

use netlink_packet_core::{
    ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage, Parseable, NLMSG_DONE, NLMSG_ERROR,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY, TCP_TIME_WAIT},
    inet::{ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};
use serde::{Deserialize, Serialize};
use std::io;
use std::net::{IpAddr, SocketAddr};

use super::time_wait_origin::{OriginClock, TimeWaitByOrigin};

/// Why a sock_diag socket or dump failed.
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    /// The socket could not be opened, bound or connected, or a request sent or a reply
    /// received.
    #[error("{action}: {error}")]
    Socket {
        /// What was being done, e.g. `opening a NETLINK_SOCK_DIAG socket`.
        action: &'static str,
        /// The kernel's answer.
        error: io::Error,
    },
    /// The kernel refused the dump before sending any socket.
    #[error("sock_diag dump refused by the kernel: {}", io::Error::from_raw_os_error(*.errno))]
    Refused {
        /// The kernel's errno.
        errno: i32,
    },
    /// The kernel stopped a dump it had started.
    #[error(
        "sock_diag dump failed after {sockets} sockets: {}",
        io::Error::from_raw_os_error(*.errno)
    )]
    Interrupted {
        /// Sockets received before the failure.
        sockets: u64,
        /// The kernel's errno.
        errno: i32,
    },
    /// A reply did not fit the receive buffer.
    #[error("sock_diag: a {length}-byte dump part exceeds the {capacity}-byte buffer")]
    Truncated {
        /// The reply's length.
        length: usize,
        /// The buffer's.
        capacity: usize,
    },
    /// A reply is not a well-formed netlink or inet_diag message.
    #[error("sock_diag: bad {message}: {problem}")]
    Malformed {
        /// Which message: `netlink message`, `error message`, `inet_diag_msg`.
        message: &'static str,
        /// What the decoder said.
        problem: String,
    },
}

impl SockDiagError {
    fn socket(action: &'static str) -> impl FnOnce(io::Error) -> SockDiagError {
        move |error| SockDiagError::Socket { action, error }
    }

    fn malformed(
        message: &'static str,
    ) -> impl FnOnce(netlink_packet_core::DecodeError) -> SockDiagError {
        move |e| SockDiagError::Malformed {
            message,
            problem: e.to_string(),
        }
    }
}

/// One TIME_WAIT socket, as the side holding it sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeWaitSocket {
    /// Address and port of the side that holds the TIME_WAIT (it closed first).
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Milliseconds left on its TIME_WAIT timer (`idiag_expires`): it entered TIME_WAIT 60 s
    /// less this ago (`time_wait_origin`).
    pub expires_ms: u32,
}

/// Which side of the server's port holds a TIME_WAIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The server: its local port is the server's (it closed first).
    Server,
    /// A client: its remote port is the server's (the client closed first).
    Client,
    /// Neither port is the server's.
    Other,
}

impl Side {
    /// The side of a socket from its ports (the local one wins when both are the server's).
    pub fn of(local_port: u16, remote_port: u16, server_port: u16) -> Side {
        if local_port == server_port {
            Side::Server
        } else if remote_port == server_port {
            Side::Client
        } else {
            Side::Other
        }
    }
}

/// TIME_WAIT counts split by side for one server port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWaitBySide {
    /// Sockets whose local port is the server's: the server closed first.
    pub server_side: u64,
    /// Sockets whose remote port is the server's: the client closed first.
    pub client_side: u64,
    /// Sockets with neither port equal to the server's (0 when the dump was filtered by port).
    pub other: u64,
}

impl TimeWaitBySide {
    /// Counts one socket.
    pub fn add(&mut self, local_port: u16, remote_port: u16, server_port: u16) {
        self.add_side(Side::of(local_port, remote_port, server_port));
    }

    /// Counts one socket held by `side`.
    pub fn add_side(&mut self, side: Side) {
        match side {
            Side::Server => self.server_side += 1,
            Side::Client => self.client_side += 1,
            Side::Other => self.other += 1,
        }
    }
}

/// Splits TIME_WAIT sockets by side for `server_port` (pure).
pub fn split_by_side(sockets: &[TimeWaitSocket], server_port: u16) -> TimeWaitBySide {
    let mut out = TimeWaitBySide::default();
    for s in sockets {
        out.add(s.local.port(), s.remote.port(), server_port);
    }
    out
}

/// Which TIME_WAIT sockets a dump returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortFilter {
    /// Every TIME_WAIT socket of the namespace.
    All,
    /// Only those whose local or remote port is this one (filtered in the kernel).
    Port(u16),
}

/// Size of one receive: the kernel fills dump parts of at most 32 KiB; twice that leaves room.
const RECV_BUF_BYTES: usize = 64 * 1024;
/// `TCPDIAG_GETSOCK`: the older request type, answered for both families in one walk.
const TCPDIAG_GETSOCK: u16 = 18;
/// `INET_DIAG_REQ_BYTECODE`, the request attribute that carries a filter program.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Offset of `idiag_expires` (u32, host order) in `struct inet_diag_msg`: after family, state,
/// timer and retrans (one byte each) and the 48-byte `inet_diag_sockid`.
const IDIAG_EXPIRES_AT: usize = 4 + 48;
// inet_diag bytecode operations (linux/inet_diag.h).
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
const INET_DIAG_BC_D_GE: u8 = 4;
const INET_DIAG_BC_D_LE: u8 = 5;

/// How dumps are asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    /// One `TCPDIAG_GETSOCK` request: both families in one walk of the hash table.
    BothFamilies,
    /// One `SOCK_DIAG_BY_FAMILY` request per family (the kernel refused the other form).
    PerFamily,
}

/// A NETLINK_SOCK_DIAG socket and its receive buffer, kept across dumps so a sampler does not
/// reopen or reallocate every 250 ms.
pub struct SockDiag {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
    walk: Walk,
}

impl SockDiag {
    /// Opens a NETLINK_SOCK_DIAG socket in the calling thread's network namespace.
    pub fn new() -> Result<SockDiag, SockDiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)
            .map_err(SockDiagError::socket("opening a NETLINK_SOCK_DIAG socket"))?;
        socket.bind_auto().map_err(SockDiagError::socket(
            "binding the NETLINK_SOCK_DIAG socket",
        ))?;
        socket
            .connect(&netlink_sys::SocketAddr::new(0, 0))
            .map_err(SockDiagError::socket(
                "connecting the NETLINK_SOCK_DIAG socket to the kernel",
            ))?;
        Ok(SockDiag {
            socket,
            buf: vec![0; RECV_BUF_BYTES],
            seq: 0,
            walk: Walk::BothFamilies,
        })
    }

    /// Calls `visit` for every TIME_WAIT socket (IPv4 and IPv6) that passes `filter`; returns
    /// how many were visited.
    pub fn for_each_time_wait(
        &mut self,
        filter: PortFilter,
        mut visit: impl FnMut(TimeWaitSocket),
    ) -> Result<u64, SockDiagError> {
        if self.walk == Walk::BothFamilies {
            self.seq = self.seq.wrapping_add(1);
            let request = both_families_request(filter, self.seq);
            match self.dump(&request, &mut visit)? {
                Ok(n) => return Ok(n),
                // Refused before any socket was sent: this kernel lacks the older form.
                Err(_) => self.walk = Walk::PerFamily,
            }
        }
        let mut n = 0;
        for family in [AF_INET, AF_INET6] {
            n += self.dump_family(family, filter, &mut visit)?;
        }
        Ok(n)
    }

    /// Every TIME_WAIT socket that passes `filter`.
    pub fn time_wait_sockets(
        &mut self,
        filter: PortFilter,
    ) -> Result<Vec<TimeWaitSocket>, SockDiagError> {
        let mut out = Vec::new();
        self.for_each_time_wait(filter, |s| out.push(s))?;
        Ok(out)
    }

    /// TIME_WAIT counts by side for `server_port`, filtered in the kernel, without a list.
    pub fn time_wait_by_side(&mut self, server_port: u16) -> Result<TimeWaitBySide, SockDiagError> {
        let mut out = TimeWaitBySide::default();
        self.for_each_time_wait(PortFilter::Port(server_port), |s| {
            out.add(s.local.port(), s.remote.port(), server_port)
        })?;
        Ok(out)
    }

    /// TIME_WAIT counts by side for `server_port`, and of them those that began since the
    /// instants of `clock` (the point's start, its window's end), without a list.
    pub fn time_wait_by_origin(
        &mut self,
        server_port: u16,
        clock: &OriginClock,
    ) -> Result<TimeWaitByOrigin, SockDiagError> {
        let mut out = TimeWaitByOrigin::default();
        self.for_each_time_wait(PortFilter::Port(server_port), |s| {
            let side = Side::of(s.local.port(), s.remote.port(), server_port);
            out.add(side, s.expires_ms, clock)
        })?;
        Ok(out)
    }

    /// One `SOCK_DIAG_BY_FAMILY` dump.
    fn dump_family(
        &mut self,
        family: u8,
        filter: PortFilter,
        visit: &mut impl FnMut(TimeWaitSocket),
    ) -> Result<u64, SockDiagError> {
        self.seq = self.seq.wrapping_add(1);
        let request = per_family_request(family, filter, self.seq);
        self.dump(&request, visit)?
            .map_err(|errno| SockDiagError::Refused { errno })
    }

    /// Sends `request` (of sequence `self.seq`) and reads the dump to its end. The inner result
    /// is the kernel's refusal (an errno), which the caller may answer with another form.
    fn dump(
        &mut self,
        request: &[u8],
        visit: &mut impl FnMut(TimeWaitSocket),
    ) -> Result<Result<u64, i32>, SockDiagError> {
        self.socket
            .send(request, 0)
            .map_err(SockDiagError::socket("sending a sock_diag dump request"))?;
        let mut count = 0;
        loop {
            // MSG_TRUNC makes recv return the real length, so a cut message is seen, not misread.
            let n = self
                .socket
                .recv(&mut &mut self.buf[..], libc::MSG_TRUNC)
                .map_err(SockDiagError::socket("receiving a sock_diag dump"))?;
            if n > self.buf.len() {
                return Err(SockDiagError::Truncated {
                    length: n,
                    capacity: self.buf.len(),
                });
            }
            match parse_dump_part(&self.buf[..n], self.seq, visit)? {
                DumpPart::More(k) => count += k,
                DumpPart::Done(k) => return Ok(Ok(count + k)),
                DumpPart::Refused(errno) if count == 0 => return Ok(Err(errno)),
                DumpPart::Refused(errno) => {
                    return Err(SockDiagError::Interrupted {
                        sockets: count,
                        errno,
                    })
                }
            }
        }
    }
}

/// Every TIME_WAIT socket of the calling thread's namespace, IPv4 and IPv6.
pub fn dump_time_wait() -> Result<Vec<TimeWaitSocket>, SockDiagError> {
    SockDiag::new()?.time_wait_sockets(PortFilter::All)
}

/// TIME_WAIT counts by side for `server_port` (one-shot; a sampler keeps a [`SockDiag`]).
pub fn time_wait_by_side(server_port: u16) -> Result<TimeWaitBySide, SockDiagError> {
    SockDiag::new()?.time_wait_by_side(server_port)
}

/// What one received buffer held.
#[derive(Debug, PartialEq, Eq)]
enum DumpPart {
    /// Sockets visited; the dump goes on.
    More(u64),
    /// Sockets visited, then NLMSG_DONE.
    Done(u64),
    /// NLMSG_ERROR with this errno.
    Refused(i32),
}

/// Parses one received buffer of a dump (pure): visits each TIME_WAIT socket of sequence `seq`,
/// skips messages of other sequences (leftovers of an abandoned dump), stops at NLMSG_ERROR.
fn parse_dump_part(
    mut bytes: &[u8],
    seq: u32,
    visit: &mut impl FnMut(TimeWaitSocket),
) -> Result<DumpPart, SockDiagError> {
    let mut count = 0;
    while !bytes.is_empty() {
        let msg = NetlinkBuffer::new_checked(bytes)
            .map_err(SockDiagError::malformed("netlink message"))?;
        let len = msg.length() as usize;
        let payload = msg.payload();
        if msg.sequence_number() == seq {
            match msg.message_type() {
                NLMSG_DONE => return Ok(DumpPart::Done(count)),
                NLMSG_ERROR => {
                    let err = ErrorBuffer::new_checked(payload)
                        .map_err(SockDiagError::malformed("error message"))?;
                    return Ok(DumpPart::Refused(err.code().map_or(0, |c| -c.get())));
                }
                // The older request is answered with its own type; the records are the same.
                SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                    let h = InetResponseHeader::parse(payload)
                        .map_err(SockDiagError::malformed("inet_diag_msg"))?;
                    // The state filter already asked for TIME_WAIT; FIN_WAIT2 minisockets carry
                    // their own state and are not counted even if a kernel sent them.
                    if h.state == TCP_TIME_WAIT {
                        let id = &h.socket_id;
                        // The parse above checked that the whole inet_diag_msg is there.
                        let expires = &payload[IDIAG_EXPIRES_AT..IDIAG_EXPIRES_AT + 4];
                        visit(TimeWaitSocket {
                            local: SocketAddr::new(unmap(id.source_address), id.source_port),
                            remote: SocketAddr::new(
                                unmap(id.destination_address),
                                id.destination_port,
                            ),
                            expires_ms: u32::from_ne_bytes([
                                expires[0], expires[1], expires[2], expires[3],
                            ]),
                        });
                        count += 1;
                    }
                }
                _ => {}
            }
        }
        // Messages are 4-byte aligned; the last one of a buffer may omit its padding.
        let step = (len + 3) & !3;
        bytes = bytes.get(step..).unwrap_or(&[]);
    }
    Ok(DumpPart::More(count))
}

/// Shows IPv4-mapped IPv6 addresses (the peers of a dual-stack listener) as IPv4, where `ss`
/// prints `::ffff:a.b.c.d`. Ports, which decide the side, are unchanged.
fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Appends the `INET_DIAG_REQ_BYTECODE` attribute for `filter` (if any) to a request and sets
/// the netlink header's length to the whole.
fn finish_request(mut buf: Vec<u8>, filter: PortFilter) -> Vec<u8> {
    if let PortFilter::Port(port) = filter {
        let code = port_bytecode(port);
        let attr_len = 4 + code.len();
        buf.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        buf.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        buf.extend_from_slice(&code);
    }
    let total = buf.len() as u32;
    buf[..4].copy_from_slice(&total.to_ne_bytes());
    buf
}

/// A `SOCK_DIAG_BY_FAMILY` request (`inet_diag_req_v2`) for TCP TIME_WAIT sockets of `family`.
fn per_family_request(family: u8, filter: PortFilter, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::TIME_WAIT,
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    finish_request(buf, filter)
}

/// A `TCPDIAG_GETSOCK` request (`struct inet_diag_req`, 60 bytes after the 16-byte netlink
/// header) for TCP TIME_WAIT sockets of both families.
fn both_families_request(filter: PortFilter, seq: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + 60 + 40);
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish_request
    buf.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
                                                // idiag_family (ignored by dumps of this form), src_len, dst_len, ext.
    buf.extend_from_slice(&[AF_INET, 0, 0, 0]);
    buf.extend_from_slice(&[0; 48]); // inet_diag_sockid: ports, addresses, interface, cookie
    buf.extend_from_slice(&(1u32 << TCP_TIME_WAIT).to_ne_bytes()); // idiag_states
    buf.extend_from_slice(&0u32.to_ne_bytes()); // idiag_dbs
    finish_request(buf, filter)
}

/// inet_diag bytecode for `sport == port || dport == port`.
///
/// Each op is `{code: u8, yes: u8, no: u16}`; a port comparison is followed by a second op whose
/// `no` holds the port. The kernel moves by `yes` bytes when the test holds and by `no` when not;
/// a socket passes when it lands exactly on the end, and fails when it jumps 4 bytes past it.
/// Equality is GE and LE (kernels before 4.16 lack S_EQ). The kernel audits every program
/// (`inet_diag_bc_audit`): all jump targets must be op boundaries reachable through `yes`, which
/// is why OR is "A, JMP to end, B" with A's failures jumping to B, exactly as `ss` compiles it.
fn port_bytecode(port: u16) -> Vec<u8> {
    // Layout (byte offsets): 0 S_GE, 8 S_LE, 16 JMP, 20 D_GE, 28 D_LE, end at 36.
    const LEN: usize = 36;
    let op = |code: u8, yes: u8, no: u16| -> [u8; 4] {
        let n = no.to_ne_bytes();
        [code, yes, n[0], n[1]]
    };
    let value = op(0, 0, port);
    let mut out = Vec::with_capacity(LEN);
    out.extend(op(INET_DIAG_BC_S_GE, 8, 20)); // no: to 20 (D_GE)
    out.extend(value);
    out.extend(op(INET_DIAG_BC_S_LE, 8, 12)); // no: 8 + 12 = 20 (D_GE)
    out.extend(value);
    out.extend(op(INET_DIAG_BC_JMP, 4, 20)); // always jumps: 16 + 20 = 36, accept
    out.extend(op(INET_DIAG_BC_D_GE, 8, 20)); // no: 20 + 20 = 40, past the end, reject
    out.extend(value);
    out.extend(op(INET_DIAG_BC_D_LE, 8, 12)); // no: 28 + 12 = 40, reject; yes: 36, accept
    out.extend(value);
    debug_assert_eq!(out.len(), LEN);
    out
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};
    use std::time::{Duration, Instant};

    use netlink_packet_core::Emitable;

    use super::*;
    use crate::probe::process::thread_cpu_us;
    use crate::probe::test_support::{in_private_netns, one_connection};

    /// Polls until `want` is seen or 3 s pass (loopback delivers the last ACK asynchronously).
    fn wait_for(diag: &mut SockDiag, port: u16, want: TimeWaitBySide) -> TimeWaitBySide {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let got = diag.time_wait_by_side(port).unwrap();
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ss_count(port: u16) -> Option<u64> {
        let filter = format!("( sport = :{port} or dport = :{port} )");
        let out = std::process::Command::new("ss")
            .args(["-Htan", "state", "time-wait", &filter])
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "ss failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .count() as u64,
        )
    }

    #[test]
    fn counts_each_side_exactly_on_loopback() {
        const N_CLIENT_FIRST: u64 = 37;
        const M_SERVER_FIRST: u64 = 23;
        in_private_netns(|private| {
            let mut diag = SockDiag::new().unwrap();
            // A fresh port with no TIME_WAIT left by earlier runs (possible in the host namespace).
            let listener = loop {
                let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
                let port = l.local_addr().unwrap().port();
                if diag.time_wait_by_side(port).unwrap() == TimeWaitBySide::default() {
                    break l;
                }
            };
            let port = listener.local_addr().unwrap().port();
            for i in 0..(N_CLIENT_FIRST + M_SERVER_FIRST) {
                one_connection(&listener, i < N_CLIENT_FIRST);
            }
            // Another server's TIME_WAITs must not count for this one.
            let elsewhere = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            for i in 0..5 {
                one_connection(&elsewhere, i % 2 == 0);
            }
            let want = TimeWaitBySide {
                server_side: M_SERVER_FIRST,
                client_side: N_CLIENT_FIRST,
                other: 0,
            };
            assert_eq!(
                wait_for(&mut diag, port, want),
                want,
                "private netns: {private}"
            );

            // The unfiltered dump, split in user space, agrees for this port, and sees the others.
            let all = diag.time_wait_sockets(PortFilter::All).unwrap();
            let split = split_by_side(&all, port);
            assert_eq!(
                (split.server_side, split.client_side),
                (M_SERVER_FIRST, N_CLIENT_FIRST)
            );
            if private {
                assert_eq!(split.other, 5);
            }
            for s in all
                .iter()
                .filter(|s| s.local.port() == port || s.remote.port() == port)
            {
                assert_eq!(s.local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
                assert_eq!(s.remote.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            // One walk for both families is what this kernel answers; the per-family fallback
            // counts the same.
            assert_eq!(diag.walk, Walk::BothFamilies);
            diag.walk = Walk::PerFamily;
            assert_eq!(diag.time_wait_by_side(port).unwrap(), want);
            // `ss` (run from this thread, so inside the same namespace) agrees where installed.
            if let Some(n) = ss_count(port) {
                assert_eq!(n, N_CLIENT_FIRST + M_SERVER_FIRST);
            }
        });
    }

    #[test]
    fn a_fresh_time_wait_has_60_s_on_its_timer_and_it_runs_down() {
        in_private_netns(|_| {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            let mut diag = SockDiag::new().unwrap();
            one_connection(&listener, false);
            let deadline = Instant::now() + Duration::from_secs(3);
            let first = loop {
                let all = diag.time_wait_sockets(PortFilter::Port(port)).unwrap();
                if !all.is_empty() || Instant::now() > deadline {
                    break all;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            assert_eq!(first.len(), 1, "{first:?}");
            // TCP_TIMEWAIT_LEN is 60 s; a few ms went by (and a jiffy or two of rounding).
            let fresh = first[0].expires_ms;
            assert!((59_000..=60_000).contains(&fresh), "{fresh} ms left");
            std::thread::sleep(Duration::from_millis(500));
            let later = diag.time_wait_sockets(PortFilter::Port(port)).unwrap()[0].expires_ms;
            let ran = i64::from(fresh) - i64::from(later);
            assert!((450..=1_500).contains(&ran), "ran down {ran} ms in 500 ms");
        });
    }

    #[test]
    fn sees_ipv6_time_wait() {
        in_private_netns(|_| {
            let Ok(listener) = TcpListener::bind("[::1]:0") else {
                return; // no IPv6 on this machine
            };
            let port = listener.local_addr().unwrap().port();
            let mut diag = SockDiag::new().unwrap();
            for i in 0..5 {
                one_connection(&listener, i % 2 == 0);
            }
            let want = TimeWaitBySide {
                server_side: 2,
                client_side: 3,
                other: 0,
            };
            assert_eq!(wait_for(&mut diag, port, want), want);
        });
    }

    #[test]
    fn split_by_side_is_by_port() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let socks = [
            TimeWaitSocket {
                local: a("127.0.0.1:80"),
                remote: a("127.0.0.1:40000"),
                expires_ms: 0,
            },
            TimeWaitSocket {
                local: a("127.0.0.1:80"),
                remote: a("127.0.0.2:40001"),
                expires_ms: 0,
            },
            TimeWaitSocket {
                local: a("127.0.0.1:40002"),
                remote: a("127.0.0.1:80"),
                expires_ms: 0,
            },
            TimeWaitSocket {
                local: a("127.0.0.1:40003"),
                remote: a("127.0.0.1:8080"),
                expires_ms: 0,
            },
            TimeWaitSocket {
                local: a("[::1]:80"),
                remote: a("[::1]:40004"),
                expires_ms: 0,
            },
        ];
        assert_eq!(
            split_by_side(&socks, 80),
            TimeWaitBySide {
                server_side: 3,
                client_side: 1,
                other: 1
            }
        );
        assert_eq!(
            split_by_side(&socks, 8080),
            TimeWaitBySide {
                server_side: 0,
                client_side: 1,
                other: 4
            }
        );
    }

    /// A dump part as the kernel sends it: inet_diag_msg records (state, socket, ms left on the
    /// timer), then NLMSG_DONE.
    fn fake_part(seq: u32, records: &[(u8, SocketId, u32)], done: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |ty: u16, payload: &[u8]| {
            let len = 16 + payload.len();
            out.extend_from_slice(&(len as u32).to_ne_bytes());
            out.extend_from_slice(&ty.to_ne_bytes());
            out.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
            out.extend_from_slice(&seq.to_ne_bytes());
            out.extend_from_slice(&0u32.to_ne_bytes());
            out.extend_from_slice(payload);
        };
        for (state, id, expires_ms) in records {
            let h = InetResponseHeader {
                family: if id.source_address.is_ipv4() {
                    AF_INET
                } else {
                    AF_INET6
                },
                state: *state,
                timer: None,
                socket_id: id.clone(),
                recv_queue: 0,
                send_queue: 0,
                uid: 0,
                inode: 0,
            };
            let mut p = vec![0; h.buffer_len()];
            h.emit(&mut p);
            // The crate writes no time for a TIME_WAIT timer (idiag_timer 3); the kernel does.
            p[2] = 3;
            p[IDIAG_EXPIRES_AT..IDIAG_EXPIRES_AT + 4].copy_from_slice(&expires_ms.to_ne_bytes());
            push(SOCK_DIAG_BY_FAMILY, &p);
        }
        if done {
            push(NLMSG_DONE, &0i32.to_ne_bytes());
        }
        out
    }

    fn id(src: &str, dst: &str) -> SocketId {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        SocketId {
            source_port: s.port(),
            destination_port: d.port(),
            source_address: s.ip(),
            destination_address: d.ip(),
            interface_id: 0,
            cookie: [0; 8],
        }
    }

    #[test]
    fn parses_parts_skips_stale_and_other_states() {
        let records = [
            (TCP_TIME_WAIT, id("127.0.0.1:80", "127.0.0.1:40000"), 59_996),
            (
                TCP_TIME_WAIT,
                id("[::ffff:127.0.0.1]:40001", "[::ffff:127.0.0.1]:80"),
                1_250,
            ),
            (5, id("127.0.0.1:40002", "127.0.0.1:80"), 30_000), // FIN_WAIT2: not counted
        ];
        let mut seen = Vec::new();
        let mut visit = |s: TimeWaitSocket| seen.push(s);
        let part = fake_part(7, &records, false);
        assert_eq!(
            parse_dump_part(&part, 7, &mut visit).unwrap(),
            DumpPart::More(2)
        );
        // A part of an older sequence is ignored, even its DONE.
        let stale = fake_part(6, &records, true);
        assert_eq!(
            parse_dump_part(&stale, 7, &mut visit).unwrap(),
            DumpPart::More(0)
        );
        let last = fake_part(7, &records[..1], true);
        assert_eq!(
            parse_dump_part(&last, 7, &mut visit).unwrap(),
            DumpPart::Done(1)
        );
        assert_eq!(seen.len(), 3);
        // Mapped IPv6 is shown as IPv4.
        assert_eq!(
            seen[1].local,
            "127.0.0.1:40001".parse::<SocketAddr>().unwrap()
        );
        // Each with what is left of its timer.
        let left: Vec<u32> = seen.iter().map(|s| s.expires_ms).collect();
        assert_eq!(left, [59_996, 1_250, 59_996]);
    }

    #[test]
    fn errors_name_the_request_and_the_errno() {
        let refused = SockDiagError::Refused {
            errno: libc::EINVAL,
        };
        assert!(
            refused
                .to_string()
                .starts_with("sock_diag dump refused by the kernel: Invalid"),
            "{refused}"
        );
        let midway = SockDiagError::Interrupted {
            sockets: 12,
            errno: libc::ENOBUFS,
        };
        assert!(midway.to_string().contains("after 12 sockets"), "{midway}");
        let bad = parse_dump_part(&[1, 2, 3], 1, &mut |_| {}).unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("sock_diag: bad netlink message: "),
            "{bad}"
        );
    }

    #[test]
    fn kernel_error_carries_its_errno() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&36u32.to_ne_bytes());
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&3u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&(-libc::EINVAL).to_ne_bytes());
        msg.extend_from_slice(&[0; 16]);
        let part = parse_dump_part(&msg, 3, &mut |_| {}).unwrap();
        assert_eq!(part, DumpPart::Refused(libc::EINVAL));
    }

    #[test]
    fn bytecode_filter_has_the_audited_shape() {
        let code = port_bytecode(0x1f90);
        assert_eq!(code.len(), 36);
        // Port values sit in the `no` field of the op after each comparison.
        for at in [4, 12, 24, 32] {
            assert_eq!(u16::from_ne_bytes([code[at + 2], code[at + 3]]), 0x1f90);
        }
        // The request carries it as one attribute and the header length covers it.
        let with = |f| {
            [
                per_family_request(AF_INET, f, 1),
                both_families_request(f, 1),
            ]
        };
        for (req, plain) in with(PortFilter::Port(8080))
            .iter()
            .zip(with(PortFilter::All).iter())
        {
            assert_eq!(req.len(), plain.len() + 4 + 36);
            assert_eq!(
                u32::from_ne_bytes(req[..4].try_into().unwrap()) as usize,
                req.len()
            );
            assert_eq!(
                u32::from_ne_bytes(plain[..4].try_into().unwrap()) as usize,
                plain.len()
            );
        }
        // The older form: 16-byte header and 60-byte inet_diag_req, as the kernel checks.
        assert_eq!(both_families_request(PortFilter::All, 1).len(), 76);
    }

    /// The cost of the sampler's dump at 10,000+ sockets: run with
    /// `cargo test --release -p loadgen probe::sock_diag::tests::dump_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn dump_cost_at_10k_time_wait() {
        in_private_netns(|private| {
            crate::probe::test_support::own_ehash_from_env();
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            for _ in 0..10_000 {
                one_connection(&listener, true);
            }
            let mut diag = SockDiag::new().unwrap();
            let by_side = diag.time_wait_by_side(port).unwrap();
            let mut cost = |label: &str, f: &mut dyn FnMut(&mut SockDiag)| {
                let (t, sys) = (thread_cpu_us(), thread_system_us());
                for _ in 0..100 {
                    f(&mut diag);
                }
                let per_dump_us = (thread_cpu_us() - t) / 100;
                let sys_us = (thread_system_us() - sys) / 100;
                println!(
                    "{label}: {per_dump_us} us CPU per dump ({sys_us} us in the kernel); at 4/s \
                     = {:.2} % of one core",
                    per_dump_us as f64 * 4.0 / 1e4
                );
            };
            println!("private netns {private}: {by_side:?}");
            cost(
                "both families in one walk, port filter (the sampler's dump)",
                &mut |d| {
                    d.time_wait_by_side(port).unwrap();
                },
            );
            cost("both families in one walk, no filter", &mut |d| {
                d.for_each_time_wait(PortFilter::All, |_| {}).unwrap();
            });
            cost("both families in two walks, port filter", &mut |d| {
                d.walk = Walk::PerFamily;
                d.time_wait_by_side(port).unwrap();
                d.walk = Walk::BothFamilies;
            });
            cost("IPv4 only, port filter", &mut |d| {
                d.dump_family(AF_INET, PortFilter::Port(port), &mut |_| {})
                    .unwrap();
            });
            cost("IPv6 only, port filter", &mut |d| {
                d.dump_family(AF_INET6, PortFilter::Port(port), &mut |_| {})
                    .unwrap();
            });
            cost("IPv4 only, no filter", &mut |d| {
                d.dump_family(AF_INET, PortFilter::All, &mut |_| {})
                    .unwrap();
            });
            cost("IPv4 only, filter on an unused port", &mut |d| {
                d.dump_family(AF_INET, PortFilter::Port(1), &mut |_| {})
                    .unwrap();
            });
        });
    }

    fn thread_system_us() -> u64 {
        use nix::sys::resource::{getrusage, UsageWho};
        let system = getrusage(UsageWho::RUSAGE_THREAD).unwrap().system_time();
        system.tv_sec() as u64 * 1_000_000 + system.tv_usec() as u64
    }
}
