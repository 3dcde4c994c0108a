//! The `select` design: one thread, one loop over select(2), the read and write `fd_set`s
//! rebuilt from the open connections each round (the loop is [`super::rebuilt_set`]'s; here
//! only the call). O(n) per wait, and only descriptors below FD_SETSIZE (1024) fit an `fd_set`:
//! the design refuses to start when `--max-conns` could take it past that.

use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;
use std::time::Duration;

use rustix::event::{fd_set_insert, FdSetElement, FdSetIter, Timespec};

use super::rebuilt_set::{self, ReadinessSet, Ready, Wanted};
use super::Serving;
use crate::stats::Counters;
use crate::{ServerConfig, ServerError};

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[("--workers", "select runs one loop on one thread")];

/// Descriptors an `fd_set` holds: 0 to 1023 (glibc's and the kernel's `__FD_SETSIZE`).
pub const FD_SETSIZE: usize = libc::FD_SETSIZE;

/// `FdSetElement`s in one FD_SETSIZE-bit set.
const SET_ELEMENTS: usize = FD_SETSIZE / (8 * size_of::<FdSetElement>());

/// Descriptors the server may open beside its connections once serving: the `--stats` file,
/// written (to a temporary sibling, then renamed) at each snapshot and at exit.
const TRANSIENT_FDS: usize = 1;

/// Checked before the server announces its address, with everything but the connections
/// open: [`ServerError::Design`] when the descriptors already open plus `max_conns` plus the
/// `--stats` file could exceed FD_SETSIZE, since each new descriptor takes the lowest free
/// number; the message gives the limit and the `--max-conns` to pass, or `--design poll`.
pub fn preflight(config: &ServerConfig, max_conns: usize) -> Result<(), ServerError> {
    let held = open_descriptors_below_fd_setsize() + TRANSIENT_FDS;
    let room = FD_SETSIZE.saturating_sub(held);
    if max_conns > room {
        let given = match config.max_conns {
            Some(n) => format!("--max-conns is {n}"),
            None => format!(
                "--max-conns was not given, so it is {max_conns} (from the open-files limit)"
            ),
        };
        return Err(ServerError::Design {
            design: "select",
            message: format!(
                "select(2) watches descriptors below FD_SETSIZE ({FD_SETSIZE}) only, and the \
                 server holds {held} of them (standard streams, listener, signal sockets, the \
                 --stats file), so at most {room} connections fit; {given}: pass --max-conns N \
                 with N <= {room}, or use --design poll"
            ),
        });
    }
    Ok(())
}

/// Serves until SIGINT/SIGTERM and the grace period are over; see [`super::serve`]. The
/// descriptor room was checked by [`preflight`]. Errors: [`ServerError::EventLoop`] if
/// select(2) fails.
pub fn serve(serving: Serving<'_>) -> Result<Counters, ServerError> {
    rebuilt_set::serve(serving, SelectSet::default())
}

/// The descriptors open now below FD_SETSIZE (the only ones that can push a connection's
/// descriptor past it), found by asking fcntl(F_GETFD) of each number: no /proc needed.
fn open_descriptors_below_fd_setsize() -> usize {
    (0..FD_SETSIZE as RawFd)
        // SAFETY: F_GETFD only reads the descriptor's flags; on a number that is not open it
        // fails with EBADF and touches nothing.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .count()
}

/// The read and write `fd_set`s handed to select(2), rebuilt each round.
pub struct SelectSet {
    readable: [FdSetElement; SET_ELEMENTS],
    writable: [FdSetElement; SET_ELEMENTS],
    /// One more than the highest descriptor in either set: select's `nfds`.
    nfds: RawFd,
    /// Each descriptor's position in this round's `watch` calls, indexed by descriptor.
    position_of: Box<[u32; FD_SETSIZE]>,
    watched: u32,
}

impl Default for SelectSet {
    fn default() -> Self {
        SelectSet {
            readable: [FdSetElement::default(); SET_ELEMENTS],
            writable: [FdSetElement::default(); SET_ELEMENTS],
            nfds: 0,
            position_of: Box::new([0; FD_SETSIZE]),
            watched: 0,
        }
    }
}

impl ReadinessSet for SelectSet {
    const DESIGN: &'static str = "select";
    const CALL: &'static str = "select";

    fn can_watch(fd: RawFd) -> bool {
        (0..FD_SETSIZE as RawFd).contains(&fd)
    }

    fn clear(&mut self) {
        // FD_ZERO on both sets.
        self.readable = [FdSetElement::default(); SET_ELEMENTS];
        self.writable = [FdSetElement::default(); SET_ELEMENTS];
        self.nfds = 0;
        self.watched = 0;
    }

    fn watch(&mut self, fd: RawFd, wanted: Wanted) {
        assert!(
            Self::can_watch(fd),
            "descriptor {fd} is not below FD_SETSIZE"
        );
        let set = match wanted {
            Wanted::Read => &mut self.readable,
            Wanted::Write => &mut self.writable,
        };
        fd_set_insert(set, fd);
        self.nfds = self.nfds.max(fd + 1);
        self.position_of[fd as usize] = self.watched;
        self.watched += 1;
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: t.subsec_nanos().into(),
        });
        // SAFETY: select's one requirement beyond the types is that every descriptor in the sets
        // be open; the loop watches only descriptors it owns and closes none of them before
        // this returns (`ReadinessSet::wait`'s contract).
        unsafe {
            rustix::event::select(
                self.nfds,
                Some(&mut self.readable),
                Some(&mut self.writable),
                None,
                timeout.as_ref(),
            )
        }?;
        Ok(())
    }

    fn collect_ready(&self, ready: &mut Vec<Ready>) {
        // A descriptor is in one set only (see `Wanted`), so it is reported once. select(2)
        // cannot tell a FIN from data: `read_closed` is false, and a short read is trusted;
        // level-triggered, a FIN it leaves unread makes the socket readable at the next wait.
        let found = FdSetIter::new(&self.readable)
            .chain(FdSetIter::new(&self.writable))
            .map(|fd| Ready {
                position: self.position_of[fd as usize] as usize,
                read_closed: false,
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
        let (writer, _writer_peer) = UnixStream::pair().unwrap();
        talker_peer.write_all(b"x").unwrap();
        let mut set = SelectSet::default();
        set.watch(quiet.as_raw_fd(), Wanted::Read);
        set.watch(talker.as_raw_fd(), Wanted::Read);
        set.watch(writer.as_raw_fd(), Wanted::Write);
        set.wait(Some(Duration::from_secs(5))).unwrap();
        let mut ready = Vec::new();
        set.collect_ready(&mut ready);
        ready.sort_by_key(|r| r.position);
        let positions: Vec<usize> = ready.iter().map(|r| r.position).collect();
        assert_eq!(positions, [1, 2]);
    }

    #[test]
    fn a_rebuilt_set_forgets_the_last_round() {
        let (mut peer, socket) = UnixStream::pair().unwrap();
        peer.write_all(b"x").unwrap();
        let mut set = SelectSet::default();
        set.watch(socket.as_raw_fd(), Wanted::Read);
        set.wait(Some(Duration::ZERO)).unwrap();
        set.clear();
        set.wait(Some(Duration::ZERO)).unwrap();
        let mut ready = Vec::new();
        set.collect_ready(&mut ready);
        assert!(ready.is_empty());
    }

    #[test]
    fn descriptors_from_fd_setsize_up_cannot_be_watched() {
        assert!(SelectSet::can_watch(0));
        assert!(SelectSet::can_watch(FD_SETSIZE as RawFd - 1));
        assert!(!SelectSet::can_watch(FD_SETSIZE as RawFd));
        assert!(!SelectSet::can_watch(-1));
    }
}
