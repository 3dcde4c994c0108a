//! Connection deadlines as one intrusive FIFO list per timeout kind.
//!
//! Every kind of timeout has one fixed duration, so a deadline set now is never earlier than one
//! set before it: appending at the tail keeps each list sorted, re-arming is an unlink and an
//! append (O(1), no allocation), and the nearest deadline is the smallest of the list heads.
//! This is the structure nginx and libev use for idle timers, and it avoids the stale entries a
//! heap with lazy deletion piles up at 100k re-arms per second.

use std::time::{Duration, Instant};

const NONE: u32 = u32::MAX;
/// `Link::list` of a slot on no list.
const UNLINKED: u16 = u16::MAX;

/// The timeouts a connection can wait on; one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Request head not complete (slowloris protection).
    Header = 0,
    /// Idle keep-alive connection between requests.
    KeepAlive = 1,
    /// A response with no send progress.
    Send = 2,
    /// After the reply, waiting for the client's FIN or the send queue to drain.
    Linger = 3,
}

const KINDS: usize = 4;

impl TimerKind {
    const ALL: [TimerKind; KINDS] = [
        TimerKind::Header,
        TimerKind::KeepAlive,
        TimerKind::Send,
        TimerKind::Linger,
    ];
}

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    /// The list the slot is on; `UNLINKED` when on none.
    list: u16,
    deadline: Instant,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// Deadlines for slots `0..n` (a connection slab's keys) on a fixed number of FIFO lists, each
/// with its own duration: the structure itself, with lists named by index. The server's
/// connections use it through [`Deadlines`]; the loadgen's request timeouts (one list per
/// client population) use it directly.
pub struct DeadlineLists {
    durations: Vec<Duration>,
    links: Vec<Link>,
    lists: Vec<List>,
    epoch: Instant,
}

impl DeadlineLists {
    /// One list per duration, named by its index in `durations`.
    ///
    /// # Panics
    /// With `u16::MAX` lists or more.
    pub fn new(durations: Vec<Duration>) -> DeadlineLists {
        assert!(
            durations.len() < UNLINKED as usize,
            "too many deadline lists"
        );
        DeadlineLists {
            lists: vec![
                List {
                    head: NONE,
                    tail: NONE,
                };
                durations.len()
            ],
            durations,
            links: Vec::new(),
            epoch: Instant::now(),
        }
    }

    /// Arms (or re-arms) `slot` to fire `list`'s duration after `now`, replacing any deadline
    /// it had.
    #[inline]
    pub fn arm(&mut self, slot: usize, list: usize, now: Instant) {
        self.disarm(slot);
        if slot >= self.links.len() {
            let unlinked = Link {
                prev: NONE,
                next: NONE,
                list: UNLINKED,
                deadline: self.epoch,
            };
            self.links.resize(slot + 1, unlinked);
        }
        let deadline = now + self.durations[list];
        let chain = &mut self.lists[list];
        let slot32 = slot as u32;
        self.links[slot] = Link {
            prev: chain.tail,
            next: NONE,
            list: list as u16,
            deadline,
        };
        if chain.tail == NONE {
            chain.head = slot32;
        } else {
            self.links[chain.tail as usize].next = slot32;
        }
        chain.tail = slot32;
    }

    /// Removes `slot`'s deadline, if it has one.
    #[inline]
    pub fn disarm(&mut self, slot: usize) {
        let Some(&link) = self.links.get(slot) else {
            return;
        };
        if link.list == UNLINKED {
            return;
        }
        let chain = &mut self.lists[link.list as usize];
        if link.prev == NONE {
            chain.head = link.next;
        } else {
            self.links[link.prev as usize].next = link.next;
        }
        if link.next == NONE {
            chain.tail = link.prev;
        } else {
            self.links[link.next as usize].prev = link.prev;
        }
        self.links[slot].list = UNLINKED;
    }

    /// The list `slot` waits on, if any.
    pub fn armed(&self, slot: usize) -> Option<usize> {
        let list = self.links.get(slot)?.list;
        (list != UNLINKED).then_some(list as usize)
    }

    /// The nearest deadline of all.
    #[inline]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lists
            .iter()
            .filter(|chain| chain.head != NONE)
            .map(|chain| self.links[chain.head as usize].deadline)
            .min()
    }

    /// Takes one expired deadline off its list, lowest list first, and returns the slot and
    /// the list; call until it returns None.
    #[inline]
    pub fn pop_expired(&mut self, now: Instant) -> Option<(usize, usize)> {
        for list in 0..self.lists.len() {
            let head = self.lists[list].head;
            if head != NONE && self.links[head as usize].deadline <= now {
                self.disarm(head as usize);
                return Some((head as usize, list));
            }
        }
        None
    }
}

/// The server's connection deadlines: one list per [`TimerKind`].
pub struct Deadlines {
    lists: DeadlineLists,
}

impl Deadlines {
    /// `durations` in `TimerKind` order: header, keep-alive, send, linger.
    pub fn new(durations: [Duration; KINDS]) -> Deadlines {
        Deadlines {
            lists: DeadlineLists::new(durations.to_vec()),
        }
    }

    /// Arms (or re-arms) `slot` to fire `kind`'s duration after `now`, replacing any timer it had.
    pub fn arm(&mut self, slot: usize, kind: TimerKind, now: Instant) {
        self.lists.arm(slot, kind as usize, now);
    }

    /// Removes `slot`'s timer, if it has one.
    pub fn disarm(&mut self, slot: usize) {
        self.lists.disarm(slot);
    }

    /// The timer `slot` waits on, if any.
    pub fn armed(&self, slot: usize) -> Option<TimerKind> {
        self.lists.armed(slot).map(|list| TimerKind::ALL[list])
    }

    /// The nearest deadline of all.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lists.next_deadline()
    }

    /// Takes one expired timer off its list, earliest kind first; call until it returns None.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(usize, TimerKind)> {
        self.lists
            .pop_expired(now)
            .map(|(slot, list)| (slot, TimerKind::ALL[list]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn expiry_follows_deadlines_across_kinds() {
        let t0 = Instant::now();
        let mut timers = Deadlines::new([ms(100), ms(50), ms(300), ms(10)]);
        timers.arm(0, TimerKind::Header, t0);
        timers.arm(1, TimerKind::KeepAlive, t0);
        timers.arm(2, TimerKind::Linger, t0);
        assert_eq!(timers.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(timers.pop_expired(t0 + ms(5)), None);
        assert_eq!(
            timers.pop_expired(t0 + ms(60)),
            Some((1, TimerKind::KeepAlive))
        );
        assert_eq!(
            timers.pop_expired(t0 + ms(60)),
            Some((2, TimerKind::Linger))
        );
        assert_eq!(timers.pop_expired(t0 + ms(60)), None);
        assert_eq!(timers.next_deadline(), Some(t0 + ms(100)));
    }

    #[test]
    fn rearming_moves_to_the_tail_and_disarm_unlinks() {
        let t0 = Instant::now();
        let mut timers = Deadlines::new([ms(100); 4]);
        for slot in 0..4 {
            timers.arm(slot, TimerKind::Send, t0);
        }
        timers.arm(1, TimerKind::Send, t0 + ms(50)); // progress: now last
        timers.disarm(2);
        timers.disarm(2); // twice is harmless
        assert_eq!(timers.armed(2), None);
        assert_eq!(timers.armed(1), Some(TimerKind::Send));
        let late = t0 + ms(1000);
        let order: Vec<usize> =
            std::iter::from_fn(|| timers.pop_expired(late).map(|e| e.0)).collect();
        assert_eq!(order, vec![0, 3, 1]);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn switching_kind_leaves_the_old_list() {
        let t0 = Instant::now();
        let mut timers = Deadlines::new([ms(10), ms(1000), ms(10), ms(10)]);
        timers.arm(5, TimerKind::Header, t0);
        timers.arm(5, TimerKind::KeepAlive, t0);
        assert_eq!(timers.pop_expired(t0 + ms(20)), None);
        assert_eq!(timers.next_deadline(), Some(t0 + ms(1000)));
    }

    #[test]
    fn any_number_of_lists_keep_their_own_durations() {
        let t0 = Instant::now();
        let mut lists = DeadlineLists::new(vec![ms(600_000), ms(10), ms(10_000), ms(10)]);
        lists.arm(7, 0, t0);
        lists.arm(2, 2, t0);
        lists.arm(4, 3, t0 + ms(5));
        lists.arm(0, 1, t0);
        assert_eq!(lists.armed(4), Some(3));
        assert_eq!(lists.next_deadline(), Some(t0 + ms(10)));
        let due: Vec<(usize, usize)> =
            std::iter::from_fn(|| lists.pop_expired(t0 + ms(20))).collect();
        assert_eq!(due, vec![(0, 1), (4, 3)]);
        lists.disarm(2);
        assert_eq!(lists.next_deadline(), Some(t0 + ms(600_000)));
        assert_eq!(lists.armed(2), None);
    }
}
