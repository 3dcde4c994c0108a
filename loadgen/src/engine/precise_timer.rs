//! A timerfd in the worker's epoll set, for wake-ups finer than epoll's millisecond timeout:
//! open-loop arrivals 100 µs apart must leave on time without the worker spinning.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

/// A one-shot monotonic timer the worker's poll watches.
pub struct PreciseTimer {
    fd: OwnedFd,
}

impl PreciseTimer {
    /// A timer registered with `registry` under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<PreciseTimer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(PreciseTimer { fd })
    }

    /// Fires once, `after` from now (at least 1 ns: zero would disarm it).
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: after.as_secs() as _,
                tv_nsec: after.subsec_nanos() as _,
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)?;
        Ok(())
    }

    /// Clears the expiry so the next one raises a new edge.
    pub fn acknowledge(&self) {
        let mut expirations = [0u8; 8];
        // EAGAIN (nothing expired since) is as good as a read.
        let _ = rustix::io::read(&self.fd, &mut expirations);
    }
}
