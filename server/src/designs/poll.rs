//! The `poll` design: one thread, one loop over poll(2), the descriptor array rebuilt from the
//! open connections each round (the loop is [`super::rebuilt_set`]'s; here only the call).
//! O(n) per wait: the kernel visits every descriptor at every call, busy or idle.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::rebuilt_set::{self, ReadinessSet, Ready, Wanted};
use super::Serving;
use crate::stats::Counters;
use crate::ServerError;

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[("--workers", "poll runs one loop on one thread")];

/// Serves until SIGINT/SIGTERM and the grace period are over; see [`super::serve`]. Errors:
/// [`ServerError::EventLoop`] if poll(2) fails.
pub fn serve(serving: Serving<'_>) -> Result<Counters, ServerError> {
    rebuilt_set::serve(serving, PollSet::default())
}

/// The `struct pollfd` array handed to poll(2), rebuilt each round.
#[derive(Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    /// What the last wait returned: how many entries have events.
    ready_count: usize,
}

impl ReadinessSet for PollSet {
    const DESIGN: &'static str = "poll";
    const CALL: &'static str = "poll";

    fn can_watch(_fd: RawFd) -> bool {
        true
    }

    fn clear(&mut self) {
        self.fds.clear();
        self.ready_count = 0;
    }

    fn watch(&mut self, fd: RawFd, wanted: Wanted) {
        let events = match wanted {
            // POLLRDHUP (Linux 2.6.17): say when the peer's FIN is in, so that the loop does not
            // trust a short read that may have left it unread.
            Wanted::Read => libc::POLLIN | libc::POLLRDHUP,
            Wanted::Write => libc::POLLOUT,
        };
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout_ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: a pointer to and the length of a live, initialised array of `pollfd`, which
        // poll(2) reads and whose `revents` it writes; the descriptors are plain numbers to it
        // (a closed one would come back as POLLNVAL, not as undefined behaviour).
        let ready = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        self.ready_count = ready as usize;
        Ok(())
    }

    fn collect_ready(&self, ready: &mut Vec<Ready>) {
        // poll(2) says how many entries have events, not which: scan until that many are found.
        let found = self
            .fds
            .iter()
            .enumerate()
            .filter(|(_, pollfd)| pollfd.revents != 0)
            .take(self.ready_count)
            .map(|(position, pollfd)| Ready {
                position,
                read_closed: pollfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR)
                    != 0,
            });
        ready.extend(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn reports_only_the_ready_descriptors_at_their_positions() {
        let (quiet, _quiet_peer) = UnixStream::pair().unwrap();
        let (mut talker_peer, talker) = UnixStream::pair().unwrap();
        talker_peer.write_all(b"x").unwrap();
        let mut set = PollSet::default();
        set.watch(quiet.as_raw_fd(), Wanted::Read);
        set.watch(talker.as_raw_fd(), Wanted::Read);
        set.wait(Some(Duration::from_secs(5))).unwrap();
        let mut ready = Vec::new();
        set.collect_ready(&mut ready);
        assert_eq!(
            ready,
            [Ready {
                position: 1,
                read_closed: false
            }]
        );
    }

    #[test]
    fn a_peer_close_is_reported_as_read_closed() {
        let (socket, peer) = UnixStream::pair().unwrap();
        drop(peer);
        let mut set = PollSet::default();
        set.watch(socket.as_raw_fd(), Wanted::Read);
        set.wait(Some(Duration::from_secs(5))).unwrap();
        let mut ready = Vec::new();
        set.collect_ready(&mut ready);
        assert_eq!(
            ready,
            [Ready {
                position: 0,
                read_closed: true
            }]
        );
    }

    #[test]
    fn a_rebuilt_set_forgets_the_last_round() {
        let (mut peer, socket) = UnixStream::pair().unwrap();
        peer.write_all(b"x").unwrap();
        let mut set = PollSet::default();
        set.watch(socket.as_raw_fd(), Wanted::Read);
        set.wait(Some(Duration::ZERO)).unwrap();
        set.clear();
        set.wait(Some(Duration::ZERO)).unwrap();
        let mut ready = Vec::new();
        set.collect_ready(&mut ready);
        assert!(ready.is_empty());
    }
}
