//! When each TIME_WAIT socket began, from what the kernel says is left of its timer, so that a
//! sample counts apart the TIME_WAITs of its own load point from those left by earlier points
//! or runs (a TIME_WAIT outlives the point that made it by up to 60 s) and from those of the
//! point's teardown. Pure: the timer's reading and the sampler's clock in, counts out.
//!
//! What the kernel reports, read in its source (`tcp_twsk_diag_fill` in `net/ipv4/tcp_diag.c`,
//! `inet_twsk_diag_fill` in `net/ipv4/inet_diag.c` before it moved there; `tcp_time_wait` and
//! `tcp_timewait_state_process` in `net/ipv4/tcp_minisocks.c`) and checked on this kernel by
//! `sock_diag`'s tests:
//!
//! - A TIME_WAIT socket's `inet_diag_msg` has `idiag_timer = 3` and `idiag_expires =
//!   jiffies_delta_to_msecs(tw->tw_timer.expires - jiffies)`: the milliseconds left on its
//!   TIME_WAIT timer, never negative (older kernels clamp at 0 by hand and convert with
//!   `jiffies_to_msecs`; the oldest, with `tw_ttd`, give the same figure rounded up). The
//!   `netlink-packet-sock-diag` crate drops it for this timer, so `sock_diag` reads it.
//! - The timer is armed with `TCP_TIMEWAIT_LEN`, 60 s fixed at build time (no sysctl changes
//!   it), at the moment the socket enters TIME_WAIT: in `tcp_time_wait` when the close completes
//!   there, or, for a socket that waited in FIN_WAIT2, when the peer's FIN arrives
//!   (`inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)`). So the socket entered TIME_WAIT
//!   `60 s - idiag_expires` before the dump. A FIN_WAIT2 minisocket runs `tcp_fin_timeout` on
//!   the same timer but reports its own state, and `sock_diag` does not count it.
//! - The timer is armed again for a full 60 s when a TIME_WAIT socket receives a retransmitted
//!   FIN (its last ACK was lost) or an out-of-window or PAWS-rejected segment: such a socket
//!   looks younger than it is. Loopback and the run's veth pair lose nothing, so in a run this
//!   does not happen; where it does, the socket counts with the later point.
//! - A socket whose timer has run out but that the kernel has not yet freed reads 0, i.e. began
//!   60 s ago or more: counted as an earlier one, which it is.
//! - Precision: the reading is in jiffies (4 ms at this machine's `HZ=250`, 10 ms at
//!   `HZ=100`), truncated to whole milliseconds, and jiffies advance from the same timekeeping
//!   as `CLOCK_MONOTONIC` (Rust's `Instant`), so the clocks agree over 60 s. Measured here on
//!   200 sockets, the begin time computed from it was 5.2 ms early to 2.9 ms late (1.1 ms early
//!   at the median). At a point's start that matters, since its first requests close within
//!   milliseconds of it: a socket counts as the point's when it computes as begun up to
//!   [`START_SLACK_MS`] before the start. Nothing of the run's closes then: a run starts each
//!   point 50 ms after it has finished with the one before (on a path delayed by a slow-line
//!   round trip, a close of the point before can still complete later, and counts as the new
//!   point's). At the window's end no slack is taken: the few sockets that close within a
//!   jiffy of it may count on either side.
//!
//! Instants here are milliseconds on the sampler's axis: 0 is the load point's start (the
//! start of its warm-up), earlier instants are negative.

use super::sock_diag::{Side, TimeWaitBySide};

/// How long a socket stays in TIME_WAIT on Linux (`TCP_TIMEWAIT_LEN`), in milliseconds.
pub const TIME_WAIT_LEN_MS: i64 = 60_000;

/// A socket that computes as begun up to this many milliseconds before the point's start
/// counts as the point's: a jiffy at `HZ=100` and the truncation to milliseconds, twice over.
pub const START_SLACK_MS: i64 = 20;

/// When a socket entered TIME_WAIT, in ms on the axis of `dump_ms` (when it was dumped), given
/// the `expires_ms` left on its timer. A reading above 60 s (no kernel gives one) counts as
/// just begun.
pub fn entered_time_wait_ms(dump_ms: i64, expires_ms: u32) -> i64 {
    dump_ms - (TIME_WAIT_LEN_MS - i64::from(expires_ms)).max(0)
}

/// The instants a dump's TIME_WAITs are told apart by, in ms on the sampler's axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OriginClock {
    /// When the dump was taken (negative before the point's start).
    pub dump_ms: i64,
    /// The end of the point's measured window; `None`: not told apart.
    pub window_end_ms: Option<i64>,
}

/// One dump's TIME_WAITs of the server's port by side, all of them and by when they began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWaitByOrigin {
    /// Every one, whenever it began.
    pub all: TimeWaitBySide,
    /// Those that began at or after the point's start (less [`START_SLACK_MS`]): the point's
    /// own.
    pub since_point_start: TimeWaitBySide,
    /// Those that began at or after the end of the measured window: the teardown's. All zero
    /// when the clock has no window end.
    pub since_window_end: TimeWaitBySide,
}

impl TimeWaitByOrigin {
    /// Counts one socket held by `side` with `expires_ms` left on its timer.
    pub fn add(&mut self, side: Side, expires_ms: u32, clock: &OriginClock) {
        let began_ms = entered_time_wait_ms(clock.dump_ms, expires_ms);
        self.all.add_side(side);
        if began_ms >= -START_SLACK_MS {
            self.since_point_start.add_side(side);
        }
        if clock.window_end_ms.is_some_and(|end| began_ms >= end) {
            self.since_window_end.add_side(side);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_began_sixty_seconds_less_its_timer_before_the_dump() {
        // Dumped 10 s into the point with 59.5 s left: it began 9.5 s in.
        assert_eq!(entered_time_wait_ms(10_000, 59_500), 9_500);
        // With 1 s left it began 59 s before the dump, 49 s before the point.
        assert_eq!(entered_time_wait_ms(10_000, 1_000), -49_000);
        // Run out but not yet freed: 60 s ago.
        assert_eq!(entered_time_wait_ms(10_000, 0), -50_000);
        // A dump before the point's start (the sampler starts a little early).
        assert_eq!(entered_time_wait_ms(-40, 60_000), -40);
        // No kernel reports more than 60 s; such a reading counts as just begun.
        assert_eq!(entered_time_wait_ms(500, 90_000), 500);
    }

    #[test]
    fn sockets_are_told_apart_by_when_they_began() {
        // A 2 s warm-up, a 10 s window: the window ends 12 s after the point's start.
        let clock = OriginClock {
            dump_ms: 12_500,
            window_end_ms: Some(12_000),
        };
        let mut counts = TimeWaitByOrigin::default();
        // Left by an earlier point: began 30 s before this one.
        counts.add(Side::Server, 60_000 - 42_500, &clock);
        // Made in the warm-up (1 s in) and in the window (11.9 s in): the point's own.
        counts.add(Side::Server, 60_000 - 11_500, &clock);
        counts.add(Side::Client, 60_000 - 600, &clock);
        // Made after the window, when the clients closed (12.2 s in): the teardown's.
        counts.add(Side::Client, 60_000 - 300, &clock);
        // Exactly at the point's start counts as the point's, and so does a socket of its
        // first requests that the kernel's jiffies make look a few milliseconds older.
        counts.add(Side::Client, 60_000 - 12_500, &clock);
        counts.add(
            Side::Server,
            60_000 - 12_500 - START_SLACK_MS as u32,
            &clock,
        );
        // One more before that is an earlier point's.
        counts.add(
            Side::Server,
            60_000 - 12_500 - START_SLACK_MS as u32 - 1,
            &clock,
        );
        counts.add(Side::Other, 60_000, &clock);
        let side = |server_side, client_side, other| TimeWaitBySide {
            server_side,
            client_side,
            other,
        };
        assert_eq!(counts.all, side(4, 3, 1));
        assert_eq!(counts.since_point_start, side(2, 3, 1));
        assert_eq!(counts.since_window_end, side(0, 1, 1));
    }

    #[test]
    fn without_a_window_end_nothing_is_the_teardowns() {
        let clock = OriginClock {
            dump_ms: 5_000,
            window_end_ms: None,
        };
        let mut counts = TimeWaitByOrigin::default();
        counts.add(Side::Server, 60_000, &clock);
        assert_eq!(counts.since_point_start.server_side, 1);
        assert_eq!(counts.since_window_end, TimeWaitBySide::default());
    }
}
