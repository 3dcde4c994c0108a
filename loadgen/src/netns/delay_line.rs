//! A user-space delay line for kernels without `sch_netem`: a thread that holds every packet it
//! reads from one packet descriptor for a fixed time, then writes it to the other one, both ways.
//!
//! [`netns`](crate::netns) uses it between two TUN devices, `abt-c` in the clients'
//! namespace and `abt-s` in the server's: the kernel routes the delayed sources' packets into
//! `abt-c`, the relay reads them, keeps each for the one-way delay and writes it to `abt-s`,
//! where the server's stack receives it as if it came off a wire (and the server's answers go
//! the same way back). Any pair of non-blocking descriptors that keep packet boundaries works
//! (TUN devices with `IFF_NO_PI`, datagram or seqpacket sockets), which is how the tests
//! exercise it without root.
//!
//! The relay, named [`THREAD_NAME`]:
//!
//! - waits in `ppoll` on both descriptors and an eventfd (the stop signal) with a timeout to
//!   the next release (nanosecond resolution, 10 µs timer slack);
//! - reads each side in batches until `EAGAIN` (or [`READ_BATCH`] packets, so neither side
//!   starves the other), stamping each packet with its release time;
//! - keeps one FIFO per direction: a constant delay keeps the order, so a queue is packets
//!   stored back to back in chunks of [`CHUNK_BYTES`] (read straight into them; emptied chunks
//!   are reused, so nothing is allocated per packet and the memory follows the deepest the
//!   queue ever got) and a ring of `(release, chunk, offset, length)` slots;
//! - bounds each direction at [`DelayLineConfig::queue_packets`] packets and
//!   [`DelayLineConfig::queue_bytes`] bytes of chunks: a packet beyond either is read and
//!   dropped, and counted;
//! - counts packets and bytes delivered each way, drops (its own and, for TUN devices, those of
//!   the kernel when the relay was too slow to read: `tx_dropped` in the device's
//!   `/proc/net/dev` line), the deepest queue and its own CPU time ([`DelayLineStats`]);
//! - pins itself to the CPUs it is given, and stops when [`DelayLineHandle::stop`] is called or
//!   the handle is dropped. It owns the descriptors and closes them on its way out: a TUN
//!   device without `IFF_PERSIST` goes away with its last descriptor, and the namespace it
//!   lived in stops being held by it.
//!
//! Not here: the TUN devices' routes and addresses (`split`), and the `TUNSETIFF` request that
//! makes a descriptor a device (`interface`). The one `unsafe` call of this file asks libc for
//! the relay thread's CPU clock, which no safe wrapper names.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek as _, SeekFrom};
use std::num::NonZeroU64;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::thread::JoinHandleExt as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use procfs::net::InterfaceDeviceStatus;
use procfs::FromRead as _;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::os::AffinityError;

/// The relay thread's name (what `ps -L` and `/proc/PID/task/TID/comm` show).
pub const THREAD_NAME: &str = "delay-line";
/// Packets held at most in each direction by default.
pub const DEFAULT_QUEUE_PACKETS: usize = 1_000_000;
/// Memory for packets in each direction at most, by default (allocated in chunks as the queue
/// first gets that deep).
pub const DEFAULT_QUEUE_BYTES: usize = 256 << 20;
/// Largest packet read: any IPv4 packet fits.
pub const MAX_PACKET: usize = 65_536;
/// Packets read from one side before the relay looks at the other side and the releases.
pub const READ_BATCH: usize = 256;
/// Timer slack of the relay thread, in nanoseconds (the default is 50 µs).
const TIMER_SLACK_NS: u64 = 10_000;

/// Why a delay line did not start. Nothing is left running then, and the ends are closed.
#[derive(Debug, thiserror::Error)]
pub enum DelayLineError {
    /// An end could not be made non-blocking, or the stop signal (an eventfd) not made.
    #[error("{action}: {error}")]
    Descriptor {
        /// What was being done, e.g. `creating the stop eventfd`.
        action: &'static str,
        /// The kernel's answer.
        error: io::Error,
    },
    /// The relay thread could not be spawned.
    #[error("spawning the {THREAD_NAME} thread: {error}")]
    Spawn {
        /// Why not.
        error: io::Error,
    },
    /// The relay could not be pinned to the CPUs it was given.
    #[error("pinning the delay line: {error}")]
    Pin {
        /// The CPU the kernel refused, and why.
        error: AffinityError,
    },
    /// The relay thread ended before it said it runs (it panicked).
    #[error("the {THREAD_NAME} thread died starting")]
    DiedStarting,
}

/// What the relay did, per direction: *up* is from the clients' end to the server's, *down*
/// the other way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayLineStats {
    /// Packets delivered (written to the server's end) after their delay.
    pub packets_up: u64,
    /// Packets delivered to the clients' end.
    pub packets_down: u64,
    /// Bytes (whole IP packets) delivered up.
    pub bytes_up: u64,
    /// Bytes delivered down.
    pub bytes_down: u64,
    /// Packets lost on the delay line, both ways: a queue at its bound, a failed write, and
    /// `dropped_by_kernel`.
    pub dropped: u64,
    /// Of `dropped`: packets the kernel dropped because the relay did not read them in time
    /// (`tx_dropped` of the TUN devices; 0 for other descriptors).
    pub dropped_by_kernel: u64,
    /// The most packets one direction's queue held at once.
    pub max_queue_packets: u64,
    /// The most bytes one direction's queue held at once.
    pub max_queue_bytes: u64,
    /// Packets still held when the relay stopped, neither delivered nor dropped (while it runs:
    /// packets held now).
    pub queued_at_stop: u64,
    /// CPU time of the relay thread (user + system), in microseconds. Writing a packet into a
    /// TUN device runs the receiving stack's work for it in the writer's context, so this
    /// includes the kernel's receive processing of every relayed packet.
    pub cpu_us: u64,
}

/// How the relay runs.
#[derive(Clone, Debug)]
pub struct DelayLineConfig {
    /// How long each packet is held, each way.
    pub one_way_delay: Duration,
    /// CPUs the relay thread pins itself to; empty: wherever the scheduler puts it.
    pub cpus: Vec<usize>,
    /// Packets held at most per direction.
    pub queue_packets: usize,
    /// Memory for packets per direction at most, in chunks of [`CHUNK_BYTES`] (two at least;
    /// a chunk holds a little less than its size: a packet starts only where `MAX_PACKET`
    /// bytes are free).
    pub queue_bytes: usize,
}

impl DelayLineConfig {
    /// The default bounds for `one_way_delay`, on `cpus`.
    pub fn new(one_way_delay: Duration, cpus: &[usize]) -> DelayLineConfig {
        DelayLineConfig {
            one_way_delay,
            cpus: cpus.to_vec(),
            queue_packets: DEFAULT_QUEUE_PACKETS,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }
}

/// One end of the delay line: a descriptor that reads and writes whole packets.
#[derive(Debug)]
pub struct DelayLineEnd {
    /// Made non-blocking by [`DelayLine::start`] if it is not already.
    pub fd: OwnedFd,
    /// For a TUN device: where the kernel counts the packets it dropped before the relay
    /// read them.
    pub counter: Option<NetDevCounter>,
}

impl DelayLineEnd {
    /// An end without kernel drop counter.
    pub fn new(fd: OwnedFd) -> DelayLineEnd {
        DelayLineEnd { fd, counter: None }
    }
}

/// A network device's line in `/proc/net/dev` of the namespace it lives in.
#[derive(Debug)]
pub struct NetDevCounter {
    /// The device's name, e.g. `abt-c`.
    pub device: String,
    /// `/proc/thread-self/net/dev`, opened by a thread inside the device's namespace (the file
    /// keeps showing that namespace; it holds the namespace until closed).
    pub proc_net_dev: File,
}

impl NetDevCounter {
    /// Opens the counter of `device` in the calling thread's namespace.
    pub fn open(device: &str) -> io::Result<NetDevCounter> {
        Ok(NetDevCounter {
            device: device.to_string(),
            proc_net_dev: File::open("/proc/thread-self/net/dev")?,
        })
    }

    /// The device's `tx_dropped` now; `None` when it is gone or the file cannot be read.
    pub fn tx_dropped(&mut self) -> Option<u64> {
        self.proc_net_dev.seek(SeekFrom::Start(0)).ok()?;
        tx_dropped(&mut self.proc_net_dev, &self.device)
    }
}

/// `tx_dropped` of `device` in `/proc/net/dev` as read from `proc_net_dev`.
fn tx_dropped(proc_net_dev: impl Read, device: &str) -> Option<u64> {
    let devices = InterfaceDeviceStatus::from_read(proc_net_dev).ok()?;
    devices.0.get(device).map(|status| status.sent_drop)
}

/// Creates the TUN device `name` (`IFF_TUN | IFF_NO_PI`, not persistent) in the calling
/// thread's network namespace and returns its descriptor, non-blocking and close-on-exec. The
/// device is down; it disappears when the descriptor is closed.
pub fn open_tun(name: &str) -> io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        "/dev/net/tun",
        OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    super::interface::attach_tun(fd.as_fd(), name)?;
    Ok(fd)
}

/// Starts delay lines.
pub struct DelayLine;

impl DelayLine {
    /// Starts the relay thread between `client` and `server` (both made non-blocking). Returns
    /// once the thread runs (pinned, if `config.cpus` names CPUs); `Err` if it could not be
    /// started or pinned (nothing is left running then, and the descriptors are closed).
    pub fn start(
        client: DelayLineEnd,
        server: DelayLineEnd,
        config: &DelayLineConfig,
    ) -> Result<DelayLineHandle, DelayLineError> {
        let descriptor =
            |action| move |error: io::Error| DelayLineError::Descriptor { action, error };
        for end in [&client, &server] {
            rustix::io::ioctl_fionbio(&end.fd, true)
                .map_err(|e| descriptor("making an end non-blocking")(e.into()))?;
        }
        let wake = rustix::event::eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)
            .map_err(|e| descriptor("creating the stop eventfd")(e.into()))?;
        let counters: Vec<NetDevCounter> = [&client.counter, &server.counter]
            .into_iter()
            .flatten()
            .map(|c| {
                Ok(NetDevCounter {
                    device: c.device.clone(),
                    proc_net_dev: c.proc_net_dev.try_clone()?,
                })
            })
            .collect::<io::Result<_>>()
            .map_err(descriptor("duplicating the /proc/net/dev handles"))?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            wake,
            counts: Default::default(),
            kernel: Mutex::new(KernelDrops::new(counters)),
        });
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread_config = config.clone();
        // The ends' own counter handles are not needed any more: `shared` has clones.
        let (client_fd, server_fd) = (client.fd, server.fd);
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let setup = prepare_thread(&thread_config.cpus);
                let ok = setup.is_ok();
                let _ = started_tx.send(setup);
                if !ok {
                    return DelayLineStats::default();
                }
                let cpu_us = relay(client_fd, server_fd, &thread_config, &thread_shared);
                thread_shared.finish(cpu_us)
            })
            .map_err(|error| DelayLineError::Spawn { error })?;
        let tid = match started_rx.recv() {
            Ok(Ok(tid)) => tid,
            Ok(Err(error)) => {
                let _ = thread.join();
                return Err(DelayLineError::Pin { error });
            }
            Err(_) => {
                let _ = thread.join();
                return Err(DelayLineError::DiedStarting);
            }
        };
        Ok(DelayLineHandle {
            shared,
            thread: Some(thread),
            final_stats: None,
            one_way_delay: config.one_way_delay,
            cpus: config.cpus.clone(),
            tid,
        })
    }
}

/// The running relay. Dropping it stops the thread (and closes its descriptors).
pub struct DelayLineHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<DelayLineStats>>,
    final_stats: Option<DelayLineStats>,
    one_way_delay: Duration,
    cpus: Vec<usize>,
    tid: libc::pid_t,
}

impl std::fmt::Debug for DelayLineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayLineHandle")
            .field("one_way_delay", &self.one_way_delay)
            .field("cpus", &self.cpus)
            .field("tid", &self.tid)
            .field("running", &self.is_running())
            .finish()
    }
}

impl DelayLineHandle {
    /// The delay each packet gets, each way.
    pub fn one_way_delay(&self) -> Duration {
        self.one_way_delay
    }

    /// The CPUs the relay is pinned to (empty: not pinned).
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// The relay thread's kernel thread id (for per-thread CPU accounting, `/proc/self/task`).
    pub fn tid(&self) -> libc::pid_t {
        self.tid
    }

    /// Whether the thread still runs.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The counts so far (a consistent picture to within one relay iteration); after the
    /// relay stopped, its final counts.
    pub fn stats(&self) -> DelayLineStats {
        if let Some(stats) = self.final_stats {
            return stats;
        }
        let mut stats = self.shared.snapshot();
        if let Some(thread) = self.thread.as_ref().filter(|t| !t.is_finished()) {
            stats.cpu_us = live_thread_cpu_us(thread).unwrap_or(0);
        }
        stats
    }

    /// Stops the relay, waits for it, and returns its final counts.
    pub fn stop(mut self) -> DelayLineStats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> DelayLineStats {
        if let Some(thread) = self.thread.take() {
            self.shared.stop.store(true, Ordering::Release);
            // An eventfd adds the 8-byte value written to its counter: 1 wakes the relay. It
            // cannot fail short of a counter at its maximum, which this one never nears.
            let _ = rustix::io::write(&self.shared.wake, &1u64.to_ne_bytes());
            let stats = thread.join().unwrap_or_else(|_| self.shared.snapshot());
            self.final_stats = Some(stats);
        }
        self.final_stats.unwrap_or_default()
    }
}

impl Drop for DelayLineHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the relay and the handle share.
struct Shared {
    stop: AtomicBool,
    wake: OwnedFd,
    counts: Counts,
    kernel: Mutex<KernelDrops>,
}

/// The relay's counts, published once per loop.
#[derive(Default)]
struct Counts {
    packets: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    dropped: AtomicU64,
    max_queue_packets: AtomicU64,
    max_queue_bytes: AtomicU64,
    queued: AtomicU64,
}

/// The TUN devices' drop counters, from when the relay started.
struct KernelDrops {
    counters: Vec<NetDevCounter>,
    baseline: Vec<u64>,
    /// The last value read, kept when the files are closed.
    last: u64,
}

impl KernelDrops {
    fn new(mut counters: Vec<NetDevCounter>) -> KernelDrops {
        let baseline = counters
            .iter_mut()
            .map(|c| c.tx_dropped().unwrap_or(0))
            .collect();
        KernelDrops {
            counters,
            baseline,
            last: 0,
        }
    }

    fn read(&mut self) -> u64 {
        let now: u64 = self
            .counters
            .iter_mut()
            .zip(&self.baseline)
            .map(|(c, base)| c.tx_dropped().map_or(0, |v| v.saturating_sub(*base)))
            .sum();
        self.last = self.last.max(now);
        self.last
    }
}

impl Shared {
    fn snapshot(&self) -> DelayLineStats {
        let c = &self.counts;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let by_kernel = self.kernel.lock().map(|mut k| k.read()).unwrap_or(0);
        DelayLineStats {
            packets_up: load(&c.packets[UP]),
            packets_down: load(&c.packets[DOWN]),
            bytes_up: load(&c.bytes[UP]),
            bytes_down: load(&c.bytes[DOWN]),
            dropped: load(&c.dropped) + by_kernel,
            dropped_by_kernel: by_kernel,
            max_queue_packets: load(&c.max_queue_packets),
            max_queue_bytes: load(&c.max_queue_bytes),
            queued_at_stop: load(&c.queued),
            cpu_us: 0,
        }
    }

    /// The relay's last act: the final counts, and the counter files closed (they hold the
    /// devices' namespaces).
    fn finish(&self, cpu_us: u64) -> DelayLineStats {
        let mut stats = self.snapshot();
        stats.cpu_us = cpu_us;
        if let Ok(mut kernel) = self.kernel.lock() {
            kernel.counters.clear();
        }
        stats
    }
}

const UP: usize = 0;
const DOWN: usize = 1;

/// In the new thread: pins it and sets its timer slack; its kernel thread id.
fn prepare_thread(cpus: &[usize]) -> Result<libc::pid_t, AffinityError> {
    crate::os::pin_current_thread(cpus)?;
    // Failing only costs precision: the default slack of 50 µs stays.
    let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(TIMER_SLACK_NS));
    Ok(rustix::thread::gettid().as_raw_nonzero().get())
}

/// CPU time of the relay while it runs, in microseconds. std and rustix name no other
/// thread's CPU clock, so libc is asked for it.
fn live_thread_cpu_us(thread: &JoinHandle<DelayLineStats>) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the handle is borrowed, so the thread is not joined and its pthread_t is valid;
    // each call writes only into the local it is given.
    let read = unsafe {
        libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock) == 0
            && libc::clock_gettime(clock, &mut now) == 0
    };
    read.then(|| now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000)
}

/// CPU time of the calling thread, in microseconds.
fn own_cpu_us() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// A packet in a queue: where its bytes are (chunk by sequence number, offset) and when it
/// goes out.
#[derive(Clone, Copy, Debug)]
struct Slot {
    release_ns: u64,
    chunk: u64,
    offset: u32,
    len: u32,
}

/// Bytes of one chunk of a queue's memory.
pub const CHUNK_BYTES: usize = 2 << 20;

/// A chunk of a queue's memory: packets back to back from offset 0 to `write`.
struct Chunk {
    buf: Box<[u8]>,
    write: usize,
    /// Packets of the queue stored in it.
    live: usize,
}

/// One direction's FIFO: packets back to back in chunks of [`CHUNK_BYTES`], each read straight
/// into the newest chunk where at least `MAX_PACKET` bytes are free (else into a fresh chunk).
/// A chunk whose packets have all gone out is kept for reuse, so the queue allocates only
/// while it grows deeper than ever before, never per packet, and its memory stays about as
/// large as its deepest point (plus two chunks).
struct Fifo {
    /// Chunks holding packets, oldest first; the last one is being filled.
    chunks: VecDeque<Chunk>,
    /// Sequence number of `chunks[0]`.
    front_seq: u64,
    spare: Vec<Box<[u8]>>,
    max_chunks: usize,
    slots: VecDeque<Slot>,
    bytes: usize,
    packet_cap: usize,
}

impl Fifo {
    fn new(bytes: usize, packets: usize) -> Fifo {
        Fifo {
            chunks: VecDeque::new(),
            front_seq: 0,
            spare: Vec::new(),
            max_chunks: (bytes / CHUNK_BYTES).max(2),
            slots: VecDeque::with_capacity(packets.clamp(1, 4096)),
            bytes: 0,
            packet_cap: packets.max(1),
        }
    }

    /// Where a packet of up to `MAX_PACKET` bytes can be read into (chunk, offset), or `None`
    /// if the queue is at one of its bounds.
    fn space(&mut self) -> Option<(u64, usize)> {
        if self.slots.len() >= self.packet_cap {
            return None;
        }
        if let Some(tail) = self.chunks.back() {
            if tail.buf.len() - tail.write >= MAX_PACKET {
                return Some((self.tail_seq(), tail.write));
            }
        }
        if self.chunks.len() >= self.max_chunks {
            return None;
        }
        let buf = self.spare.pop().unwrap_or_else(|| {
            // Zeroed memory this large comes fresh from mmap: pages get touched (and
            // resident) only when a packet is first written there.
            vec![0u8; CHUNK_BYTES].into_boxed_slice()
        });
        self.chunks.push_back(Chunk {
            buf,
            write: 0,
            live: 0,
        });
        Some((self.tail_seq(), 0))
    }

    fn tail_seq(&self) -> u64 {
        self.front_seq + self.chunks.len() as u64 - 1
    }

    fn chunk(&self, seq: u64) -> &Chunk {
        &self.chunks[(seq - self.front_seq) as usize]
    }

    fn window(&mut self, (seq, at): (u64, usize)) -> &mut [u8] {
        let index = (seq - self.front_seq) as usize;
        &mut self.chunks[index].buf[at..at + MAX_PACKET]
    }

    /// Queues the `len` bytes read at `place` (from [`Fifo::space`]).
    fn push(&mut self, (seq, at): (u64, usize), len: usize, release_ns: u64) {
        debug_assert!(len > 0 && len <= MAX_PACKET);
        let index = (seq - self.front_seq) as usize;
        let chunk = &mut self.chunks[index];
        chunk.write = at + len;
        chunk.live += 1;
        self.slots.push_back(Slot {
            release_ns,
            chunk: seq,
            offset: at as u32,
            len: len as u32,
        });
        self.bytes += len;
    }

    fn front(&self) -> Option<(Slot, &[u8])> {
        let slot = *self.slots.front()?;
        let start = slot.offset as usize;
        let buf = &self.chunk(slot.chunk).buf;
        Some((slot, &buf[start..start + slot.len as usize]))
    }

    fn pop(&mut self) {
        let Some(slot) = self.slots.pop_front() else {
            return;
        };
        self.bytes -= slot.len as usize;
        let index = (slot.chunk - self.front_seq) as usize;
        self.chunks[index].live -= 1;
        // In order: emptied chunks are at the front. The newest one stays (being filled).
        while self.chunks.len() > 1 && self.chunks[0].live == 0 {
            let chunk = self.chunks.pop_front().expect("two chunks");
            self.front_seq += 1;
            self.spare.push(chunk.buf);
        }
        if self.slots.is_empty() {
            if let Some(only) = self.chunks.front_mut() {
                only.write = 0;
            }
        }
    }

    /// Chunks of memory the queue has (in use or spare).
    #[cfg(test)]
    fn chunks_allocated(&self) -> usize {
        self.chunks.len() + self.spare.len()
    }
}

/// One direction of the relay.
struct Direction<'fd> {
    from: BorrowedFd<'fd>,
    to: BorrowedFd<'fd>,
    queue: Fifo,
    packets: u64,
    bytes: u64,
    dropped: u64,
    max_packets: u64,
    max_bytes: u64,
    /// The last write would block: wait for `to` to be writable.
    blocked: bool,
    /// Reading `from` failed for good (e.g. its device is gone): not polled any more.
    dead: bool,
}

impl<'fd> Direction<'fd> {
    fn new(from: BorrowedFd<'fd>, to: BorrowedFd<'fd>, config: &DelayLineConfig) -> Self {
        Direction {
            from,
            to,
            queue: Fifo::new(config.queue_bytes, config.queue_packets),
            packets: 0,
            bytes: 0,
            dropped: 0,
            max_packets: 0,
            max_bytes: 0,
            blocked: false,
            dead: false,
        }
    }

    /// Reads up to `READ_BATCH` packets; `true` if it stopped at `EAGAIN` (nothing left).
    fn read_batch(&mut self, scratch: &mut [u8], epoch: Instant, delay_ns: u64) -> bool {
        if self.dead {
            return true;
        }
        for _ in 0..READ_BATCH {
            let at = self.queue.space();
            let window = match at {
                Some(at) => self.queue.window(at),
                None => &mut scratch[..],
            };
            let n = match rustix::io::read(self.from, window) {
                Ok(n) => n,
                Err(Errno::AGAIN) => return true,
                Err(Errno::INTR) => continue,
                Err(_) => {
                    self.dead = true;
                    return true;
                }
            };
            if n == 0 {
                // An empty datagram (TUN never reads 0): nothing to relay.
                continue;
            }
            let Some(at) = at else {
                self.dropped += 1;
                continue;
            };
            let release = now_ns(epoch) + delay_ns;
            self.queue.push(at, n, release);
            self.max_packets = self.max_packets.max(self.queue.slots.len() as u64);
            self.max_bytes = self.max_bytes.max(self.queue.bytes as u64);
        }
        false
    }

    /// Writes every packet due by `now`; the release time of the next one, if any (`None`
    /// also while blocked: then `to` becoming writable wakes the relay).
    fn release(&mut self, now: u64) -> Option<u64> {
        while let Some((slot, packet)) = self.queue.front() {
            if slot.release_ns > now {
                return Some(slot.release_ns);
            }
            match rustix::io::write(self.to, packet) {
                Ok(_) => {
                    self.packets += 1;
                    self.bytes += slot.len as u64;
                }
                Err(Errno::AGAIN) => {
                    self.blocked = true;
                    return None;
                }
                Err(Errno::INTR) => continue,
                Err(_) => self.dropped += 1,
            }
            self.queue.pop();
        }
        None
    }
}

fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// The relay loop; returns its CPU time in microseconds when told to stop.
fn relay(client: OwnedFd, server: OwnedFd, config: &DelayLineConfig, shared: &Shared) -> u64 {
    let epoch = Instant::now();
    let delay_ns = config.one_way_delay.as_nanos() as u64;
    let (c, s) = (client.as_fd(), server.as_fd());
    let mut dirs = [Direction::new(c, s, config), Direction::new(s, c, config)];
    let mut scratch = vec![0u8; MAX_PACKET];
    while !shared.stop.load(Ordering::Acquire) {
        let mut more = false;
        for dir in &mut dirs {
            more |= !dir.read_batch(&mut scratch, epoch, delay_ns);
        }
        let now = now_ns(epoch);
        let next = dirs.iter_mut().filter_map(|dir| dir.release(now)).min();
        publish(&shared.counts, &dirs);
        let timeout = if more {
            Some(0)
        } else {
            next.map(|at| at.saturating_sub(now_ns(epoch)))
        };
        let [up, down] = &dirs;
        // The stop signal first; then the client's end: read it unless dead, wait for it to be
        // writable if the packets going down are blocked. Likewise the server's end. An end
        // with nothing to wait for is left out: poll reports errors and hang-ups whatever the
        // events asked, and a dead end would wake it forever.
        let mut fds = [
            PollFd::new(&shared.wake, PollFlags::IN),
            PollFd::new(&c, PollFlags::empty()),
            PollFd::new(&s, PollFlags::empty()),
        ];
        let mut waiting = 1;
        for (fd, read, write) in [(&c, !up.dead, down.blocked), (&s, !down.dead, up.blocked)] {
            let events = poll_events(read, write);
            if !events.is_empty() {
                fds[waiting] = PollFd::new(fd, events);
                waiting += 1;
            }
        }
        let timeout = timeout.map(|ns| Timespec {
            tv_sec: (ns / 1_000_000_000) as _,
            tv_nsec: (ns % 1_000_000_000) as _,
        });
        // EINTR and the like end the wait early, which the next iteration absorbs.
        let _ = rustix::event::poll(&mut fds[..waiting], timeout.as_ref());
        let woken = fds[0].revents().contains(PollFlags::IN);
        for dir in &mut dirs {
            dir.blocked = false;
        }
        if woken {
            // Resets the eventfd's counter; a read that finds it zero already is as good.
            let _ = rustix::io::read(&shared.wake, &mut [0u8; 8]);
        }
    }
    publish(&shared.counts, &dirs);
    let cpu_us = own_cpu_us();
    drop(dirs);
    drop((client, server));
    cpu_us
}

fn poll_events(read: bool, write: bool) -> PollFlags {
    let mut events = PollFlags::empty();
    if read {
        events |= PollFlags::IN;
    }
    if write {
        events |= PollFlags::OUT;
    }
    events
}

fn publish(counts: &Counts, dirs: &[Direction; 2]) {
    let store = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
    for (i, dir) in dirs.iter().enumerate() {
        store(&counts.packets[i], dir.packets);
        store(&counts.bytes[i], dir.bytes);
    }
    store(&counts.dropped, dirs.iter().map(|d| d.dropped).sum());
    store(
        &counts.max_queue_packets,
        dirs.iter().map(|d| d.max_packets).max().unwrap_or(0),
    );
    store(
        &counts.max_queue_bytes,
        dirs.iter().map(|d| d.max_bytes).max().unwrap_or(0),
    );
    store(
        &counts.queued,
        dirs.iter().map(|d| d.queue.slots.len() as u64).sum(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `len` bytes (filled with `tag`) into the queue if it has room.
    fn put(queue: &mut Fifo, len: usize, tag: u8) -> bool {
        let Some(at) = queue.space() else {
            return false;
        };
        queue.window(at)[..len].fill(tag);
        queue.push(at, len, 0);
        true
    }

    fn take(queue: &mut Fifo, expected: &mut VecDeque<(usize, u8)>) {
        let (len, tag) = expected.pop_front().unwrap();
        let (slot, bytes) = queue.front().unwrap();
        assert_eq!(slot.len as usize, len);
        assert!(bytes.iter().all(|&b| b == tag), "packet {tag} overwritten");
        queue.pop();
    }

    #[test]
    fn the_queue_keeps_order_and_contents_and_reuses_its_chunks() {
        let mut queue = Fifo::new(8 * CHUNK_BYTES, 1_000_000);
        let mut expected = VecDeque::new();
        let mut tag = 0u8;
        let sizes = [1500, 52, MAX_PACKET, 9000, 1, 40, 1500];
        // A queue that grows to about 3 MiB and drains, three times over: chunks come and go.
        for _ in 0..3 {
            for round in 0..600usize {
                assert!(put(&mut queue, sizes[round % sizes.len()], tag));
                expected.push_back((sizes[round % sizes.len()], tag));
                tag = tag.wrapping_add(1);
                if round % 3 == 0 {
                    take(&mut queue, &mut expected);
                }
            }
            let most = queue.chunks_allocated();
            assert!(
                most <= 5,
                "{most} chunks for a queue of {} bytes",
                queue.bytes
            );
            while !expected.is_empty() {
                take(&mut queue, &mut expected);
                assert_eq!(queue.bytes, expected.iter().map(|(l, _)| l).sum::<usize>());
            }
            assert!(queue.front().is_none());
            assert_eq!(queue.bytes, 0);
            // Nothing new allocated on the next round: all of it is spare or in use.
            assert_eq!(queue.chunks_allocated(), most);
        }
        // A steady shallow queue cycles through two chunks or three.
        let mut queue = Fifo::new(8 * CHUNK_BYTES, 1_000_000);
        for round in 0..100_000usize {
            assert!(put(&mut queue, 1500, round as u8));
            expected.push_back((1500, round as u8));
            if expected.len() > 20 {
                take(&mut queue, &mut expected);
            }
        }
        assert!(
            queue.chunks_allocated() <= 3,
            "{}",
            queue.chunks_allocated()
        );
    }

    #[test]
    fn the_queue_stops_at_its_bounds() {
        let mut queue = Fifo::new(1 << 20, 3);
        assert!(put(&mut queue, 100, 1) && put(&mut queue, 100, 2) && put(&mut queue, 100, 3));
        assert!(!put(&mut queue, 100, 4));
        queue.pop();
        assert!(put(&mut queue, 100, 4));
        // Two chunks at least, whatever the byte bound says.
        let mut queue = Fifo::new(0, 1_000_000);
        let mut held = 0;
        while put(&mut queue, MAX_PACKET, 0) {
            held += 1;
        }
        assert_eq!(held, 2 * (CHUNK_BYTES / MAX_PACKET));
        assert_eq!(queue.chunks_allocated(), 2);
    }

    #[test]
    fn tx_dropped_is_read_from_proc_net_dev() {
        // The kernel's layout (net/core/net-procfs.c); `abt-c` transmitted 999 packets and
        // dropped 17.
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n \
            abt-c: 123456789    1000    0    0    0     0          0         0  9876543     999    0   17    0     0       0          0\n";
        assert_eq!(tx_dropped(text.as_bytes(), "abt-c"), Some(17));
        assert_eq!(tx_dropped(text.as_bytes(), "lo"), Some(0));
        assert_eq!(tx_dropped(text.as_bytes(), "abt-s"), None);
    }

    #[test]
    fn a_net_dev_counter_reads_again_and_again() {
        let mut counter = NetDevCounter::open("lo").unwrap();
        assert!(counter.tx_dropped().is_some());
        assert!(counter.tx_dropped().is_some());
        assert_eq!(
            NetDevCounter::open("no-such-dev").unwrap().tx_dropped(),
            None
        );
    }
}
