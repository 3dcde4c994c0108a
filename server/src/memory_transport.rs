//! An in-memory [`Transport`]: a client's bytes scripted as segments, a send buffer that fills
//! up, and the client reading the replies out of it. One connection's whole life runs without a
//! socket, for the fuzz targets, the property tests and the instruction counts.
//!
//! The model, a TCP connection seen from the server's end:
//! * Input: the client's bytes as a list of segments. A read never crosses a segment's end;
//!   the first read after a segment is used up says `WouldBlock`, and the next segment has
//!   arrived by the read after it. After the last segment's `WouldBlock`, reads say
//!   `WouldBlock` for ever, or return 0 (the client's FIN) if the script ends with one
//!   ([`MemoryTransport::with_fin`]).
//! * Output: writes go into a send queue of [`MemoryTransport::with_send_capacity`] bytes at
//!   most (unlimited by default); a full queue makes writes say `WouldBlock`, as a socket's
//!   full send buffer does. The client takes bytes out of the queue
//!   ([`MemoryTransport::client_reads`]), which is also what [`Transport::unacked_bytes`]
//!   reports: the bytes written that the client does not have yet.
//! * [`MemoryTransport::after`] plays the event loop around a [`Connection`]: given the step a
//!   connection answered, it says what the loop would deliver next (readiness, a timer, or
//!   nothing because the connection closed), letting the client read as a real one would.
//!
//! [`Connection`]: crate::conn::Connection

use std::cell::Cell;
use std::io::{self, IoSlice, Read, Write};

use crate::conn::{Step, Transport};
use crate::stats::CloseSide;
use crate::timers::TimerKind;

/// What the loop delivers to a connection next (see [`MemoryTransport::after`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopEvent {
    /// The socket is readable or writable: call `Connection::on_ready`.
    Ready,
    /// Nothing will come before this timer expires: call `Connection::on_timer` with it.
    Timer(TimerKind),
    /// The connection asked to be closed; nothing more happens.
    Closed(CloseSide),
}

/// A client connection in memory; see the module docs for the model.
#[derive(Debug, Default)]
pub struct MemoryTransport {
    segments: Vec<Vec<u8>>,
    /// Index into `segments` of the one being read; `segments.len()` once all arrived and read.
    segment: usize,
    /// Bytes of `segments[segment]` already read.
    offset: usize,
    /// The client half-closes after its last segment.
    fin: bool,
    /// A read has returned the FIN (0).
    fin_read: bool,
    bytes_read: usize,
    /// Bytes written, not yet taken by the client: the kernel's send queue.
    queue: Vec<u8>,
    /// Most bytes `queue` holds; `None`: unlimited (writes never block).
    send_capacity: Option<usize>,
    /// Bytes the client took out of the queue, in order; see [`MemoryTransport::received`].
    received: Vec<u8>,
    /// Bytes accepted by writes in all.
    written: usize,
    /// How many bytes the client reads each time the server waits for room to write, in turn;
    /// empty: all of the queue.
    client_pace: Vec<usize>,
    /// Next index into `client_pace`.
    pace_turn: usize,
    write_shut_down: Cell<bool>,
    /// Writes tried after `shutdown_write`; a socket refuses them (EPIPE).
    writes_after_shutdown: usize,
    reset_on_close: Cell<bool>,
    nodelay: Cell<bool>,
    notsent_lowat: Cell<Option<u32>>,
}

impl MemoryTransport {
    /// A connection whose client sends `segments` one after the other and then waits, with
    /// an unlimited send buffer, read by the client whenever the server waits (see
    /// [`MemoryTransport::after`]).
    pub fn new(segments: Vec<Vec<u8>>) -> MemoryTransport {
        MemoryTransport {
            segments,
            ..MemoryTransport::default()
        }
    }

    /// The client half-closes (FIN) after its last segment: reads then return 0.
    pub fn with_fin(mut self) -> MemoryTransport {
        self.fin = true;
        self
    }

    /// The send buffer holds at most `bytes` (at least 1) that the client has not read; the
    /// queue is allocated here, so writes never allocate.
    pub fn with_send_capacity(mut self, bytes: usize) -> MemoryTransport {
        let bytes = bytes.max(1);
        self.send_capacity = Some(bytes);
        self.queue = Vec::with_capacity(bytes);
        self
    }

    /// When the server waits for room to write, the client reads these many bytes (each at
    /// least 1), one entry per wait, round and round; without a pace it reads all it has.
    pub fn with_client_pace(mut self, bytes_per_wait: Vec<usize>) -> MemoryTransport {
        self.client_pace = bytes_per_wait.into_iter().map(|b| b.max(1)).collect();
        self
    }

    /// The bytes the client has read so far, in order.
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// The bytes written that the client has not read yet.
    pub fn send_queue(&self) -> &[u8] {
        &self.queue
    }

    /// Bytes accepted by writes since the start.
    pub fn bytes_written(&self) -> usize {
        self.written
    }

    /// Bytes the server has read since the start.
    pub fn bytes_read(&self) -> usize {
        self.bytes_read
    }

    /// Whether the server has something left to read: bytes of a segment, or the FIN.
    pub fn input_pending(&self) -> bool {
        let rest_unread = self
            .segments
            .iter()
            .skip(self.segment)
            .enumerate()
            .any(|(i, s)| {
                if i == 0 {
                    self.offset < s.len()
                } else {
                    !s.is_empty()
                }
            });
        rest_unread || (self.fin && !self.fin_read)
    }

    /// Whether the server shut down its write side (sent its FIN while still reading).
    pub fn write_shut_down(&self) -> bool {
        self.write_shut_down.get()
    }

    /// Writes the server tried after shutting down its write side (each refused with EPIPE).
    pub fn writes_after_shutdown(&self) -> usize {
        self.writes_after_shutdown
    }

    /// Whether the server asked for an RST at close (SO_LINGER 0).
    pub fn reset_on_close(&self) -> bool {
        self.reset_on_close.get()
    }

    /// Whether the server turned Nagle's algorithm off.
    pub fn nodelay(&self) -> bool {
        self.nodelay.get()
    }

    /// The `TCP_NOTSENT_LOWAT` the connection set, if any.
    pub fn notsent_lowat(&self) -> Option<u32> {
        self.notsent_lowat.get()
    }

    /// The client reads up to `bytes` from the send queue; returns how many it took.
    pub fn client_reads(&mut self, bytes: usize) -> usize {
        let taken = bytes.min(self.queue.len());
        self.received.extend_from_slice(&self.queue[..taken]);
        self.queue.drain(..taken);
        taken
    }

    /// What the loop does after the connection answered `step`, the client acting in between:
    /// * `Yield`: run it again ([`LoopEvent::Ready`]).
    /// * waiting to write (`Send`): the client reads by its pace and the socket is writable
    ///   again; if the client reads nothing (the queue was empty), the send timer fires.
    /// * waiting for input (`Header`, `KeepAlive`, `Linger`): readable if the script has more
    ///   for the server; otherwise the client reads all the replies, and the timer fires.
    /// * `Close`: [`LoopEvent::Closed`].
    pub fn after(&mut self, step: Step) -> LoopEvent {
        match step {
            // No frame comes in memory: the client takes what was sent, and the connection
            // runs again (a viewer with nothing new answers `AwaitFrame` again).
            Step::AwaitFrame => {
                self.client_reads(usize::MAX);
                LoopEvent::Ready
            }
            Step::Yield => LoopEvent::Ready,
            Step::Close(side) => LoopEvent::Closed(side),
            Step::Wait {
                timer: TimerKind::Send,
                ..
            } => {
                let pace = if self.client_pace.is_empty() {
                    usize::MAX
                } else {
                    let pace = self.client_pace[self.pace_turn % self.client_pace.len()];
                    self.pace_turn += 1;
                    pace
                };
                if self.client_reads(pace) > 0 {
                    LoopEvent::Ready
                } else {
                    LoopEvent::Timer(TimerKind::Send)
                }
            }
            Step::Wait { timer, .. } => {
                if self.input_pending() {
                    LoopEvent::Ready
                } else {
                    self.client_reads(usize::MAX);
                    LoopEvent::Timer(timer)
                }
            }
        }
    }

    /// Room left in the send queue.
    fn send_room(&self) -> usize {
        match self.send_capacity {
            Some(capacity) => capacity.saturating_sub(self.queue.len()),
            None => usize::MAX,
        }
    }

    /// The checks every write makes before taking bytes: `Ok(room)`, or the error to return.
    fn write_room(&mut self) -> io::Result<usize> {
        if self.write_shut_down.get() {
            self.writes_after_shutdown += 1;
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        match self.send_room() {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            room => Ok(room),
        }
    }
}

impl Read for MemoryTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(segment) = self.segments.get(self.segment) else {
            if self.fin {
                self.fin_read = true;
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let rest = &segment[self.offset..];
        if rest.is_empty() {
            // The socket is drained; the next segment arrives after this.
            self.segment += 1;
            self.offset = 0;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.offset += n;
        self.bytes_read += n;
        Ok(n)
    }
}

impl Write for MemoryTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let room = self.write_room()?;
        let n = buf.len().min(room);
        self.queue.extend_from_slice(&buf[..n]);
        self.written += n;
        Ok(n)
    }

    /// Takes as much of the slices, in order, as the send buffer has room for, as `writev`.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let mut room = self.write_room()?;
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(room);
            self.queue.extend_from_slice(&buf[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for MemoryTransport {
    fn shutdown_write(&self) -> io::Result<()> {
        self.write_shut_down.set(true);
        Ok(())
    }

    fn unacked_bytes(&self) -> io::Result<usize> {
        Ok(self.queue.len())
    }

    fn set_reset_on_close(&self) -> io::Result<()> {
        self.reset_on_close.set(true);
        Ok(())
    }

    fn set_nodelay(&self) -> io::Result<()> {
        self.nodelay.set(true);
        Ok(())
    }

    /// Recorded only ([`MemoryTransport::notsent_lowat`]): the queue has no unsent/in-flight
    /// split, so every queued byte counts as unsent.
    fn set_notsent_lowat(&self, bytes: u32) -> io::Result<()> {
        self.notsent_lowat.set(Some(bytes));
        Ok(())
    }
}
