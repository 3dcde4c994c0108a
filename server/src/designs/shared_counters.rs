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
use crate::stats::{CloseSide, Counters, LiveCounters, LiveGauges, LIVE_BUCKETS};

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
/// The live counters, in [`LiveCounters`] order: `frames_published` (kept as the largest value
/// published, not a sum: every worker's ring publishes the same frames), then the 8 counts
/// from `source_late` to `fifo_cap_kicks`.
const LIVE_PUBLISHED_AT: usize = PEAK_AT + 1;
const LIVE_COUNTS_AT: usize = LIVE_PUBLISHED_AT + 1;
const LIVE_DISPATCH_AT: usize = LIVE_COUNTS_AT + 8;
const LIVE_SPREAD_AT: usize = LIVE_DISPATCH_AT + LIVE_BUCKETS;
/// The live gauges as sums of what each worker contributes now ([`LiveGauges`] order, the peak
/// excluded): viewers, queue bytes, unsent bytes, unacked bytes, frames alive.
const LIVE_GAUGES_AT: usize = LIVE_SPREAD_AT + LIVE_BUCKETS;
/// The most frames alive at once (the sum over the workers' rings), raised as the sum grows.
const LIVE_ALIVE_PEAK_AT: usize = LIVE_GAUGES_AT + 5;
const HOTLINK_AT: usize = LIVE_ALIVE_PEAK_AT + 1;

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
            live,
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
        // Destructured for the same reason as above. The gauges are not moved here: a worker
        // contributes its share of them with `set_live_gauges`.
        let LiveCounters {
            frames_published,
            source_late,
            viewers_joined,
            frames_sent,
            bytes_sent,
            frames_skipped,
            frames_dropped,
            kicks,
            fifo_cap_kicks,
            dispatch_delay_log2_us,
            spread_log2_us,
            gauges: _,
        } = live;
        if *frames_published != 0 {
            words[LIVE_PUBLISHED_AT].fetch_max(*frames_published, Ordering::Relaxed);
            *frames_published = 0;
        }
        let counts = [
            source_late,
            viewers_joined,
            frames_sent,
            bytes_sent,
            frames_skipped,
            frames_dropped,
            kicks,
            fifo_cap_kicks,
        ];
        for (i, n) in counts.into_iter().enumerate() {
            add(LIVE_COUNTS_AT + i, n);
        }
        for (i, n) in dispatch_delay_log2_us.iter_mut().enumerate() {
            add(LIVE_DISPATCH_AT + i, n);
        }
        for (i, n) in spread_log2_us.iter_mut().enumerate() {
            add(LIVE_SPREAD_AT + i, n);
        }
        for (i, n) in hotlink_alternates
            .iter_mut()
            .take(self.rule_count)
            .enumerate()
        {
            add(HOTLINK_AT + i, n);
        }
    }

    /// Moves one worker's share of the live gauges from `contributed` (what it added so far) to
    /// `now` (its viewer's values now, frames alive in rings it reports for), so that the
    /// shared words hold the sum over workers. `now.frames_alive_peak` is ignored: the peak is
    /// the most the summed `frames_alive_now` reached. A worker whose viewer ends moves to zero.
    pub fn set_live_gauges(&self, contributed: &mut LiveGauges, now: LiveGauges) {
        let words = self.words();
        let pairs = [
            (contributed.viewers_now, now.viewers_now),
            (contributed.queue_bytes_now, now.queue_bytes_now),
            (contributed.unsent_bytes_now, now.unsent_bytes_now),
            (contributed.unacked_bytes_now, now.unacked_bytes_now),
            (contributed.frames_alive_now, now.frames_alive_now),
        ];
        for (i, (old, new)) in pairs.into_iter().enumerate() {
            if old != new {
                // Two's-complement wrapping add: a negative change subtracts exactly.
                let sum = words[LIVE_GAUGES_AT + i]
                    .fetch_add(new.wrapping_sub(old), Ordering::Relaxed)
                    .wrapping_add(new.wrapping_sub(old));
                if i == 4 {
                    words[LIVE_ALIVE_PEAK_AT].fetch_max(sum, Ordering::Relaxed);
                }
            }
        }
        *contributed = LiveGauges {
            frames_alive_peak: 0,
            ..now
        };
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
        let live = &mut counters.live;
        live.frames_published = load(LIVE_PUBLISHED_AT);
        let counts = [
            &mut live.source_late,
            &mut live.viewers_joined,
            &mut live.frames_sent,
            &mut live.bytes_sent,
            &mut live.frames_skipped,
            &mut live.frames_dropped,
            &mut live.kicks,
            &mut live.fifo_cap_kicks,
        ];
        for (i, n) in counts.into_iter().enumerate() {
            *n = load(LIVE_COUNTS_AT + i);
        }
        for (i, n) in live.dispatch_delay_log2_us.iter_mut().enumerate() {
            *n = load(LIVE_DISPATCH_AT + i);
        }
        for (i, n) in live.spread_log2_us.iter_mut().enumerate() {
            *n = load(LIVE_SPREAD_AT + i);
        }
        live.gauges = LiveGauges {
            viewers_now: load(LIVE_GAUGES_AT),
            queue_bytes_now: load(LIVE_GAUGES_AT + 1),
            unsent_bytes_now: load(LIVE_GAUGES_AT + 2),
            unacked_bytes_now: load(LIVE_GAUGES_AT + 3),
            frames_alive_now: load(LIVE_GAUGES_AT + 4),
            frames_alive_peak: load(LIVE_ALIVE_PEAK_AT),
        };
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

    #[test]
    fn live_counts_add_up_across_a_fork_and_gauges_sum_each_workers_share() {
        let shared = SharedCounters::new(1).unwrap();
        let mut local = Counters::new(1);
        local.live.frames_published = 10;
        local.live.frames_sent = 3;
        local.live.fifo_cap_kicks = 1;
        local.live.dispatch_delay_log2_us[4] = 2;
        local.live.spread_log2_us[23] = 1;
        shared.publish(&mut local);
        assert_eq!(
            local.live,
            LiveCounters::default(),
            "publishing zeroes them"
        );
        let mut mine = LiveGauges::default();
        let viewer = |queue, unsent, unacked, alive| LiveGauges {
            viewers_now: 1,
            queue_bytes_now: queue,
            unsent_bytes_now: unsent,
            unacked_bytes_now: unacked,
            frames_alive_now: alive,
            frames_alive_peak: 99,
        };
        shared.set_live_gauges(&mut mine, viewer(3072, 100, 200, 2));

        // SAFETY: as in `published_counts_add_up_across_a_fork`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let mut child = Counters::new(1);
            child.live.frames_published = 12;
            child.live.frames_sent = 4;
            child.live.dispatch_delay_log2_us[4] = 1;
            shared.publish(&mut child);
            let mut theirs = LiveGauges::default();
            shared.set_live_gauges(&mut theirs, viewer(0, 50, 60, 3));
            // SAFETY: leaves the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);

        let live = shared.total().live;
        assert_eq!(live.frames_published, 12, "the largest, not the sum");
        assert_eq!(live.frames_sent, 7);
        assert_eq!(live.fifo_cap_kicks, 1);
        assert_eq!(live.dispatch_delay_log2_us[4], 3);
        assert_eq!(live.spread_log2_us[23], 1);
        assert_eq!(
            live.gauges,
            LiveGauges {
                viewers_now: 2,
                queue_bytes_now: 3072,
                unsent_bytes_now: 150,
                unacked_bytes_now: 260,
                frames_alive_now: 5,
                frames_alive_peak: 5,
            }
        );
        // The parent's viewer shrinks its queue, then leaves: its share goes, the peak stays.
        shared.set_live_gauges(&mut mine, viewer(1000, 0, 10, 1));
        assert_eq!(shared.total().live.gauges.queue_bytes_now, 1000);
        shared.set_live_gauges(&mut mine, LiveGauges::default());
        let gauges = shared.total().live.gauges;
        assert_eq!((gauges.viewers_now, gauges.queue_bytes_now), (1, 0));
        assert_eq!((gauges.frames_alive_now, gauges.frames_alive_peak), (3, 5));
    }
}
