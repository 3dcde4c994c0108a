//! Counters summed over the threads or processes of a blocking design (`threads`, `prefork`,
//! `fork`): atomic words in one `MAP_SHARED` anonymous mapping, made before any fork, so that
//! every child adds to the same words and the parent reads the sum for SIGUSR1 snapshots and
//! the final `--stats`. Each worker counts into its own plain [`Counters`] (what `Connection`
//! writes to) and moves them here after every step ([`SharedCounters::publish`]), so a
//! snapshot includes every request answered so far, not only finished connections.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};

use crate::http::Status;
use crate::stats::{CloseSide, Counters};

/// Fixed words before the per-rule hotlink counters; see the `*_AT` offsets.
const STATUS_AT: usize = 0;
const RESPONSE_BYTES_AT: usize = STATUS_AT + Status::ALL.len();
const ACCEPTED_AT: usize = RESPONSE_BYTES_AT + 1;
const CLOSES_AT: usize = ACCEPTED_AT + 1;
const TIMEOUTS_AT: usize = CLOSES_AT + 3;
const ACCEPT_PAUSES_AT: usize = TIMEOUTS_AT + 4;
/// Connections open now (a gauge, raised and lowered by the design).
const OPEN_AT: usize = ACCEPT_PAUSES_AT + 1;
/// The most connections open at once so far.
const PEAK_AT: usize = OPEN_AT + 1;
const HOTLINK_AT: usize = PEAK_AT + 1;

/// [`Counters`] as atomic `u64` words in shared memory, plus a gauge of connections open now
/// and its peak. Survives `fork`: parent and children see the same words. Adds are `Relaxed`:
/// each word is a sum on its own, and a snapshot needs no order between words.
pub struct SharedCounters {
    words: NonNull<AtomicU64>,
    len: usize,
    rule_count: usize,
}

// SAFETY: the mapping holds only atomics and lives until drop; any thread may add to it.
unsafe impl Send for SharedCounters {}
// SAFETY: as above: shared access goes through atomic operations only.
unsafe impl Sync for SharedCounters {}

impl SharedCounters {
    /// Zeroed counters with one hotlink word per reftab rule (`rule_count`), in a fresh
    /// `MAP_SHARED | MAP_ANONYMOUS` mapping (zero-filled by the kernel). Errors: mmap's.
    pub fn new(rule_count: usize) -> io::Result<SharedCounters> {
        let len = HOTLINK_AT + rule_count;
        let bytes = len * std::mem::size_of::<AtomicU64>();
        // SAFETY: a new anonymous mapping aliases nothing; the kernel zero-fills it, and zero is
        // a valid AtomicU64. Page alignment exceeds AtomicU64's.
        let ptr = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                bytes,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )?
        };
        let words = NonNull::new(ptr.cast::<AtomicU64>()).expect("mmap returned no address");
        Ok(SharedCounters {
            words,
            len,
            rule_count,
        })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `len` initialised atomics, mapped until drop.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr(), self.len) }
    }

    /// Adds `local` to the shared words and zeroes it, so that it can go on counting and be
    /// published again. `local.connections_peak` is not moved: peaks come from the gauge.
    pub fn publish(&self, local: &mut Counters) {
        // Destructured so that a field added to `Counters` fails to compile here until it is
        // shared too.
        let Counters {
            requests_by_status,
            response_bytes,
            connections_accepted,
            connections_peak: _,
            closes,
            hotlink_alternates,
            timeouts,
            accept_pauses,
            // Not shared yet: designs::preflight refuses --live for threads and prefork.
            live: _,
        } = local;
        let words = self.words();
        let add = |at: usize, value: &mut u64| {
            if *value != 0 {
                words[at].fetch_add(*value, Ordering::Relaxed);
                *value = 0;
            }
        };
        for (i, n) in requests_by_status.iter_mut().enumerate() {
            add(STATUS_AT + i, n);
        }
        add(RESPONSE_BYTES_AT, response_bytes);
        add(ACCEPTED_AT, connections_accepted);
        for (i, n) in closes.iter_mut().enumerate() {
            add(CLOSES_AT + i, n);
        }
        for (i, n) in timeouts.iter_mut().enumerate() {
            add(TIMEOUTS_AT + i, n);
        }
        add(ACCEPT_PAUSES_AT, accept_pauses);
        for (i, n) in hotlink_alternates
            .iter_mut()
            .take(self.rule_count)
            .enumerate()
        {
            add(HOTLINK_AT + i, n);
        }
    }

    /// One more connection open; raises the peak if this is the most so far. Returns the
    /// connections open now.
    pub fn connection_opened(&self) -> u64 {
        let words = self.words();
        let open = words[OPEN_AT].fetch_add(1, Ordering::Relaxed) + 1;
        words[PEAK_AT].fetch_max(open, Ordering::Relaxed);
        open
    }

    /// One connection fewer open.
    pub fn connection_ended(&self) {
        self.words()[OPEN_AT].fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections open now (the gauge).
    pub fn open(&self) -> u64 {
        self.words()[OPEN_AT].load(Ordering::Relaxed)
    }

    /// The sum so far of everything published, with `connections_peak` from the gauge.
    pub fn total(&self) -> Counters {
        let words = self.words();
        let load = |at: usize| words[at].load(Ordering::Relaxed);
        let mut counters = Counters::new(self.rule_count);
        for (i, n) in counters.requests_by_status.iter_mut().enumerate() {
            *n = load(STATUS_AT + i);
        }
        counters.response_bytes = load(RESPONSE_BYTES_AT);
        counters.connections_accepted = load(ACCEPTED_AT);
        counters.connections_peak = load(PEAK_AT);
        for (i, n) in counters.closes.iter_mut().enumerate() {
            *n = load(CLOSES_AT + i);
        }
        for (i, n) in counters.timeouts.iter_mut().enumerate() {
            *n = load(TIMEOUTS_AT + i);
        }
        counters.accept_pauses = load(ACCEPT_PAUSES_AT);
        for (i, n) in counters.hotlink_alternates.iter_mut().enumerate() {
            *n = load(HOTLINK_AT + i);
        }
        counters
    }

    /// [`SharedCounters::total`] plus `parent`, what the accepting thread or process counted
    /// itself (accepts, accept pauses): the counters of a SIGUSR1 snapshot.
    pub fn running_total(&self, parent: &Counters) -> Counters {
        let mut counters = self.total();
        let peak = counters.connections_peak;
        counters.merge(parent);
        counters.connections_peak = peak;
        counters
    }

    /// The final counters: [`SharedCounters::total`] plus `parent` (what the accepting thread or
    /// process counted itself), with every accepted connection whose end nobody counted (a
    /// thread or child cut off or killed at the end of `--grace`) counted as a server-first
    /// close, as the `loop` design counts the connections it cuts off.
    pub fn final_total(&self, parent: &Counters) -> Counters {
        let mut counters = self.running_total(parent);
        let ended: u64 = counters.closes.iter().sum();
        let unended = counters.connections_accepted.saturating_sub(ended);
        counters.closes[CloseSide::ServerFirst as usize] += unended;
        counters
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with its length; no reference to it outlives self.
        let _ = unsafe {
            munmap(
                self.words.as_ptr().cast(),
                self.len * std::mem::size_of::<AtomicU64>(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counts_add_up_across_a_fork() {
        let shared = SharedCounters::new(2).unwrap();
        let mut local = Counters::new(2);
        local.requests_by_status[1] = 3;
        local.response_bytes = 100;
        local.hotlink_alternates[1] = 2;
        local.count_close(CloseSide::ClientFirst);
        shared.publish(&mut local);
        assert_eq!(
            local.response_bytes, 0,
            "publishing zeroes the local counters"
        );
        assert_eq!(local.hotlink_alternates, vec![0, 0]);

        // SAFETY: the test process is single-threaded here as far as the child is concerned:
        // the child only adds to atomics and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let mut child = Counters::new(2);
            child.response_bytes = 5;
            child.timeouts[2] = 1;
            child.hotlink_alternates[1] = 1;
            shared.publish(&mut child);
            // SAFETY: leaves the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);

        let total = shared.total();
        assert_eq!(total.requests_by_status[1], 3);
        assert_eq!(total.response_bytes, 105);
        assert_eq!(total.timeouts[2], 1);
        assert_eq!(total.hotlink_alternates, vec![0, 3]);
        assert_eq!(total.closes[CloseSide::ClientFirst as usize], 1);
    }

    #[test]
    fn the_peak_is_the_most_open_at_once_and_unended_connections_close_server_first() {
        let shared = SharedCounters::new(0).unwrap();
        shared.connection_opened();
        shared.connection_opened();
        shared.connection_ended();
        shared.connection_opened();
        assert_eq!(shared.open(), 2);
        let mut parent = Counters::new(0);
        parent.connections_accepted = 3;
        let mut child = Counters::new(0);
        child.count_close(CloseSide::ClientFirst);
        shared.publish(&mut child);
        let total = shared.final_total(&parent);
        assert_eq!(total.connections_peak, 2);
        assert_eq!(total.closes[CloseSide::ClientFirst as usize], 1);
        assert_eq!(total.closes[CloseSide::ServerFirst as usize], 2);
    }
}
