//! What a connection of the `uring` design reads from and writes to: the provided buffer ring
//! the kernel receives into ([`BufRing`]), one connection's bytes in and out ([`ConnIo`]), and
//! the [`Transport`] the shared state machine is handed ([`UringStream`]), which reads bytes
//! already received and queues bytes for the next `IORING_OP_SEND`.
//!
//! Live viewers (`--live`) go through the same queue: each frame a viewer is sent is copied
//! into its queue (one copy per viewer per frame, where the other designs hand the kernel the
//! shared `Arc<Frame>` bytes directly; a zero-copy send would need the frame kept alive until the
//! send's completion). The queued bytes count as unsent ([`UringStream::unsent_bytes`]:
//! SIOCOUTQNSD plus the queue), so a viewer takes its next frame only when kernel and queue
//! together hold less than the mark, as on a plain socket; and a write while a send is in the
//! kernel says WouldBlock, so the queue holds at most about one frame beyond the mark. A viewer
//! is ready again when the queue has been sent (the send completion drives it) or, with the
//! queue empty, when the kernel's unsent bytes fall under the mark (POLLOUT).

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::BufRingEntry;
use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};

use crate::conn::Transport;
use crate::designs::socket::{poll_writable, set_notsent_lowat, unacked_bytes, unsent_bytes};

/// Bytes of one receive buffer: a page, which holds any ordinary request head (browsers send
/// 300 to 800 bytes, Flash's and the SPECweb96 requests less); longer input spans buffers.
pub const RECV_BUF_BYTES: usize = 4096;

/// Receive buffers in the ring: a power of two (the ring's index mask), at most 32768 (the
/// kernel's limit). 2048 pages is 8 MiB of address space, touched only as buffers are used;
/// a buffer goes back to the ring as soon as its connection has read it, so the ring runs dry
/// only when more than this many connections receive between two waits, and those get
/// ENOBUFS and are re-armed once buffers return.
pub const RECV_BUF_COUNT: u16 = 2048;

/// Most bytes a connection may have queued for sending (copied, not yet sent): a write beyond
/// this says WouldBlock, as a full socket would. 256 KiB keeps a large file moving in few
/// sends without letting one connection hold megabytes of copies.
pub const SEND_QUEUE_BYTES: usize = 256 * 1024;

/// A send queue whose allocation grew past this is freed once empty: an idle keep-alive
/// connection keeps at most one small reply's worth of buffer.
const KEPT_SEND_CAPACITY: usize = 16 * 1024;

/// The provided buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19): `RECV_BUF_COUNT` buffers of
/// `RECV_BUF_BYTES` that multishot receives fill, each named by its buffer id in the completion.
/// Both the ring of entries and the buffers are anonymous mappings: page-aligned, as the kernel
/// requires of the ring, and never moved.
pub struct BufRing {
    entries: NonNull<BufRingEntry>,
    data: NonNull<u8>,
    /// Our copy of the ring's tail: entries published to the kernel so far (wrapping).
    tail: u16,
    /// Buffers the kernel may still fill, as far as the completions seen so far tell: an upper
    /// bound, since the kernel may have taken more whose completions are not reaped yet.
    available: usize,
    /// Set when the kernel may still write into the buffers: they are then never unmapped.
    leaked: bool,
}

impl BufRing {
    /// Maps the ring and its buffers and puts every buffer on the ring; register it with
    /// [`BufRing::ring_addr`] before the first receive.
    pub fn new() -> io::Result<BufRing> {
        let entries_bytes = RECV_BUF_COUNT as usize * std::mem::size_of::<BufRingEntry>();
        let data_bytes = RECV_BUF_COUNT as usize * RECV_BUF_BYTES;
        // SAFETY: fresh private anonymous mappings, not aliased by anything.
        let entries = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                entries_bytes,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }?;
        // SAFETY: as above.
        let data = match unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                data_bytes,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        } {
            Ok(data) => data,
            Err(e) => {
                // SAFETY: the mapping made just above, used by nothing.
                let _ = unsafe { munmap(entries, entries_bytes) };
                return Err(e.into());
            }
        };
        let mut ring = BufRing {
            entries: NonNull::new(entries.cast()).expect("mmap returned a mapping"),
            data: NonNull::new(data.cast()).expect("mmap returned a mapping"),
            tail: 0,
            available: 0,
            leaked: false,
        };
        for bid in 0..RECV_BUF_COUNT {
            ring.recycle(bid);
        }
        Ok(ring)
    }

    /// The ring's address, for `register_buf_ring_with_flags`.
    pub fn ring_addr(&self) -> u64 {
        self.entries.as_ptr() as u64
    }

    /// Buffers the kernel may still fill (an upper bound; see the field).
    pub fn available(&self) -> usize {
        self.available
    }

    /// The kernel filled buffer `bid`: it is off the ring until recycled.
    pub fn taken(&mut self) {
        self.available = self.available.saturating_sub(1);
    }

    /// Bytes `start..end` of buffer `bid`, which the kernel filled and has not been handed back.
    fn bytes(&self, bid: u16, start: usize, end: usize) -> &[u8] {
        assert!(bid < RECV_BUF_COUNT && start <= end && end <= RECV_BUF_BYTES);
        // SAFETY: inside the data mapping (asserted); the buffer is off the ring, so the kernel
        // does not write it while this borrow lives.
        unsafe {
            std::slice::from_raw_parts(
                self.data
                    .as_ptr()
                    .add(bid as usize * RECV_BUF_BYTES + start),
                end - start,
            )
        }
    }

    /// Hands buffer `bid` back to the kernel: one entry at the tail, then the tail published.
    pub fn recycle(&mut self, bid: u16) {
        let index = (self.tail & (RECV_BUF_COUNT - 1)) as usize;
        // SAFETY: `index` is inside the ring mapping; the entry at the tail is not one the
        // kernel reads until the tail below moves past it.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        entry.set_addr(self.data.as_ptr() as u64 + bid as u64 * RECV_BUF_BYTES as u64);
        entry.set_len(RECV_BUF_BYTES as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is a u16 inside the first entry, which the mapping keeps alive and
        // aligned; the kernel reads it concurrently, hence the atomic release store, which also
        // orders the entry written above before it.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
        self.available += 1;
    }

    /// The kernel may still write into the buffers (requests did not finish by the end): never
    /// unmap them.
    pub fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        let entries_bytes = RECV_BUF_COUNT as usize * std::mem::size_of::<BufRingEntry>();
        let data_bytes = RECV_BUF_COUNT as usize * RECV_BUF_BYTES;
        // SAFETY: the two mappings made in `new`; no request can write into them any more (the
        // loop waits for every request to finish, or leaks the ring).
        unsafe {
            let _ = munmap(self.entries.as_ptr().cast(), entries_bytes);
            let _ = munmap(self.data.as_ptr().cast(), data_bytes);
        }
    }
}

/// Received bytes `start..end` of buffer `bid`, not read by the connection yet.
#[derive(Clone, Copy, Debug)]
struct Received {
    bid: u16,
    start: u16,
    end: u16,
}

/// Where a multishot request of the loop stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpState {
    /// Not in the kernel.
    Idle,
    /// In the kernel, producing completions.
    Armed,
    /// A cancel was submitted; its last completion has not arrived.
    Cancelling,
}

/// One connection's I/O between the kernel and its state machine: bytes received and not yet
/// read, bytes written and not yet sent, and where its receive and send requests stand.
pub struct ConnIo {
    received: VecDeque<Received>,
    /// The multishot receive.
    pub recv: OpState,
    /// The receive ended with 0 bytes: the peer's FIN, after the bytes queued.
    pub eof: bool,
    /// The receive failed with this errno (ECONNRESET...).
    pub recv_error: Option<i32>,
    /// Waiting on the starved list for buffers (its receive ended with ENOBUFS).
    pub starved: bool,
    /// Bytes written by the connection, `send_done..` of them not sent yet.
    send_queue: Vec<u8>,
    send_done: usize,
    /// A send of `send_queue[send_done..]` is in the kernel: the queue must not move or grow.
    pub send_in_flight: bool,
    /// A send failed with this errno (EPIPE, ECONNRESET): every later write and read fails.
    pub send_error: Option<i32>,
    /// A write said WouldBlock, or a live viewer waits for the kernel to take its frame: drive
    /// the connection once the queue is sent.
    pub write_blocked: bool,
    /// A one-shot `IORING_OP_POLL_ADD` for POLLOUT is in the kernel: a live viewer whose queue
    /// is empty waits for the kernel's unsent bytes to fall under the mark (under
    /// `TCP_NOTSENT_LOWAT`, POLLOUT means fewer than half the mark unsent, Linux a74f0fa082b7).
    pub poll_out: OpState,
    /// `shutdown(SHUT_WR)` was asked with bytes still queued: done once they are sent. A cell
    /// because [`Transport::shutdown_write`] takes `&self`.
    pub shutdown_after_send: Cell<bool>,
}

impl Default for ConnIo {
    fn default() -> Self {
        ConnIo::new()
    }
}

impl ConnIo {
    /// A connection with nothing received or queued and no request in the kernel.
    pub fn new() -> ConnIo {
        ConnIo {
            received: VecDeque::new(),
            recv: OpState::Idle,
            eof: false,
            recv_error: None,
            starved: false,
            send_queue: Vec::new(),
            send_done: 0,
            send_in_flight: false,
            send_error: None,
            write_blocked: false,
            poll_out: OpState::Idle,
            shutdown_after_send: Cell::new(false),
        }
    }

    /// The kernel received `len` bytes into buffer `bid` for this connection.
    pub fn push_received(&mut self, bid: u16, len: usize) {
        debug_assert!(len <= RECV_BUF_BYTES);
        self.received.push_back(Received {
            bid,
            start: 0,
            end: len as u16,
        });
    }

    /// Hands every held buffer back, unread: the connection is closing.
    pub fn release_received(&mut self, buffers: &mut BufRing) {
        for received in self.received.drain(..) {
            buffers.recycle(received.bid);
        }
    }

    /// Whether the receive should be in the kernel: the connection can still receive and does
    /// not already hold `max_held` buffers it has not read (backpressure: no more is taken from
    /// the socket until it reads, as a full socket buffer would stop the peer).
    pub fn wants_recv(&self, max_held: usize) -> bool {
        !self.eof
            && self.recv_error.is_none()
            && self.send_error.is_none()
            && self.received.len() < max_held
    }

    /// Bytes queued and not sent yet.
    pub fn unsent(&self) -> usize {
        self.send_queue.len() - self.send_done
    }

    /// The bytes the next send takes, if one should start now: queued bytes and no send in the
    /// kernel. Marks the send in flight; the slice must stay untouched until
    /// [`ConnIo::sent`] or [`ConnIo::send_failed`].
    pub fn start_send(&mut self) -> Option<(*const u8, usize)> {
        if self.send_in_flight || self.unsent() == 0 || self.send_error.is_some() {
            return None;
        }
        self.send_in_flight = true;
        let unsent = &self.send_queue[self.send_done..];
        Some((unsent.as_ptr(), unsent.len()))
    }

    /// The send in flight took `n` bytes. Returns whether the queue is now empty.
    pub fn sent(&mut self, n: usize) -> bool {
        self.send_in_flight = false;
        self.send_done = (self.send_done + n).min(self.send_queue.len());
        if self.send_done < self.send_queue.len() {
            return false;
        }
        self.send_queue.clear();
        self.send_done = 0;
        if self.send_queue.capacity() > KEPT_SEND_CAPACITY {
            self.send_queue = Vec::new();
        }
        true
    }

    /// The send in flight failed with `errno` (or was cancelled): the rest is dropped.
    pub fn send_failed(&mut self, errno: i32) {
        self.send_in_flight = false;
        self.send_error = Some(errno);
        self.send_queue = Vec::new();
        self.send_done = 0;
    }
}

/// The [`Transport`] a connection of the `uring` design is driven with, for one step: reads
/// take the bytes io_uring already received, writes queue a copy for the next send. The socket
/// options and SIOCOUTQ act on the descriptor directly.
pub struct UringStream<'a> {
    /// The connection's socket.
    pub fd: BorrowedFd<'a>,
    /// Its bytes in and out.
    pub io: &'a mut ConnIo,
    /// Where received buffers go back once read.
    pub buffers: &'a mut BufRing,
}

impl Read for UringStream<'_> {
    /// Copies received bytes, oldest first, handing each emptied buffer back to the kernel.
    /// With nothing received: the receive's error, `Ok(0)` after the peer's FIN, else
    /// WouldBlock (the next receive completion will drive the connection again).
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut copied = 0;
        while copied < out.len() {
            let Some(front) = self.io.received.front_mut() else {
                break;
            };
            let bytes = self
                .buffers
                .bytes(front.bid, front.start as usize, front.end as usize);
            let n = bytes.len().min(out.len() - copied);
            out[copied..copied + n].copy_from_slice(&bytes[..n]);
            copied += n;
            front.start += n as u16;
            if front.start == front.end {
                let bid = front.bid;
                self.io.received.pop_front();
                self.buffers.recycle(bid);
            }
        }
        if copied > 0 || out.is_empty() {
            return Ok(copied);
        }
        if let Some(errno) = self.io.recv_error.or(self.io.send_error) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        if self.io.eof {
            return Ok(0);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for UringStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// Copies as much as the send queue takes (up to [`SEND_QUEUE_BYTES`]); WouldBlock while a
    /// send is in the kernel (the queue must not move under it) or the queue is full.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let Some(errno) = self.io.send_error {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let room = SEND_QUEUE_BYTES.saturating_sub(self.io.send_queue.len());
        if self.io.send_in_flight || room == 0 {
            self.io.write_blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        let mut left = total.min(room);
        self.io.send_queue.reserve(left);
        let taken = left;
        for buf in bufs {
            if left == 0 {
                break;
            }
            let n = buf.len().min(left);
            self.io.send_queue.extend_from_slice(&buf[..n]);
            left -= n;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for UringStream<'_> {
    /// Our FIN goes after every queued byte: at once if none is queued, else when the last
    /// send completes.
    fn shutdown_write(&self) -> io::Result<()> {
        if self.io.unsent() > 0 {
            self.io.shutdown_after_send.set(true);
            return Ok(());
        }
        rustix::net::shutdown(self.fd, rustix::net::Shutdown::Write).map_err(io::Error::from)
    }

    /// SIOCOUTQ plus the bytes still queued here: the peer has not acknowledged those either.
    fn unacked_bytes(&self) -> io::Result<usize> {
        Ok(unacked_bytes(self.fd)? + self.io.unsent())
    }

    fn set_reset_on_close(&self) -> io::Result<()> {
        socket2::SockRef::from(&self.fd).set_linger(Some(Duration::ZERO))
    }

    fn set_nodelay(&self) -> io::Result<()> {
        socket2::SockRef::from(&self.fd).set_nodelay(true)
    }

    /// SIOCOUTQNSD plus the bytes still queued here: none of them has left yet.
    fn unsent_bytes(&self) -> io::Result<usize> {
        Ok(unsent_bytes(self.fd)? + self.io.unsent())
    }

    fn set_notsent_lowat(&self, bytes: u32) -> io::Result<()> {
        set_notsent_lowat(self.fd, bytes)
    }

    /// Writable only with nothing queued here (a write would otherwise wait behind the queue)
    /// and a writable socket.
    fn poll_writable(&self) -> io::Result<bool> {
        Ok(self.io.unsent() == 0 && !self.io.send_in_flight && poll_writable(self.fd)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    impl BufRing {
        /// Plays the kernel: `bytes` received into buffer `bid`.
        fn fill(&mut self, bid: u16, bytes: &[u8]) {
            assert!(bytes.len() <= RECV_BUF_BYTES);
            self.taken();
            // SAFETY: inside the data mapping; nothing else borrows it in the test.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    self.data.as_ptr().add(bid as usize * RECV_BUF_BYTES),
                    bytes.len(),
                )
            }
        }
    }

    fn socket() -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        TcpStream::connect(listener.local_addr().unwrap()).unwrap()
    }

    #[test]
    fn reads_span_buffers_and_hand_each_back_once_emptied() {
        let mut buffers = BufRing::new().unwrap();
        let all = buffers.available();
        let mut io = ConnIo::new();
        buffers.fill(7, b"GET / HT");
        buffers.fill(3, b"TP/1.1\r\n\r\n");
        io.push_received(7, 8);
        io.push_received(3, 10);
        assert_eq!(buffers.available(), all - 2);
        let sock = socket();
        let mut stream = UringStream {
            fd: sock.as_fd(),
            io: &mut io,
            buffers: &mut buffers,
        };
        let mut out = [0u8; 5];
        assert_eq!(stream.read(&mut out).unwrap(), 5);
        assert_eq!(&out, b"GET /");
        let mut rest = [0u8; 64];
        assert_eq!(stream.read(&mut rest).unwrap(), 13);
        assert_eq!(&rest[..13], b" HTTP/1.1\r\n\r\n");
        assert_eq!(
            stream.read(&mut rest).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        stream.io.eof = true;
        assert_eq!(stream.read(&mut rest).unwrap(), 0);
        assert_eq!(buffers.available(), all);
    }

    #[test]
    fn writes_queue_until_full_and_block_while_a_send_is_in_flight() {
        let mut buffers = BufRing::new().unwrap();
        let mut io = ConnIo::new();
        let sock = socket();
        let mut stream = UringStream {
            fd: sock.as_fd(),
            io: &mut io,
            buffers: &mut buffers,
        };
        let big = vec![1u8; SEND_QUEUE_BYTES + 10];
        let n = stream
            .write_vectored(&[IoSlice::new(b"head"), IoSlice::new(&big)])
            .unwrap();
        assert_eq!(n, SEND_QUEUE_BYTES);
        assert_eq!(
            stream.write(b"x").unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(stream.io.write_blocked);
        // The queue counts as unacknowledged until the kernel has it.
        assert!(stream.unacked_bytes().unwrap() >= SEND_QUEUE_BYTES);
        let (_, len) = io.start_send().unwrap();
        assert_eq!(len, SEND_QUEUE_BYTES);
        assert!(io.start_send().is_none(), "one send at a time");
        assert!(!io.sent(1000), "a partial send leaves the rest queued");
        assert_eq!(io.unsent(), SEND_QUEUE_BYTES - 1000);
        let (_, len) = io.start_send().unwrap();
        assert_eq!(len, SEND_QUEUE_BYTES - 1000);
        assert!(io.sent(len));
        assert_eq!(io.unsent(), 0);
    }

    #[test]
    fn a_write_shutdown_waits_for_the_queue() {
        let mut buffers = BufRing::new().unwrap();
        let mut io = ConnIo::new();
        let sock = socket();
        let mut stream = UringStream {
            fd: sock.as_fd(),
            io: &mut io,
            buffers: &mut buffers,
        };
        stream.write_all(b"reply").unwrap();
        stream.shutdown_write().unwrap();
        assert!(io.shutdown_after_send.get());
    }

    #[test]
    fn unsent_bytes_count_the_queue_and_the_kernels_unsent_part() {
        let mut buffers = BufRing::new().unwrap();
        let mut io = ConnIo::new();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _peer = listener.accept().unwrap();
        let mut stream = UringStream {
            fd: sock.as_fd(),
            io: &mut io,
            buffers: &mut buffers,
        };
        stream.set_notsent_lowat(4096).unwrap();
        assert!(
            stream.poll_writable().unwrap(),
            "nothing queued, an empty socket"
        );
        stream.write_all(&[7u8; 3000]).unwrap();
        assert_eq!(
            stream.unsent_bytes().unwrap(),
            3000,
            "all of it still queued here"
        );
        assert!(
            !stream.poll_writable().unwrap(),
            "a write would wait behind the queue"
        );
    }
}
