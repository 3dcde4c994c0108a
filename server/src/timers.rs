//! Connection deadlines as one intrusive FIFO list per timeout kind.
//!
//! Every kind of timeout has one fixed duration, so a deadline set now is never earlier than one
//! set before it: appending at the tail keeps each list sorted, re-arming is an unlink and an
//! append (O(1), no allocation), and the nearest deadline is the smallest of the list heads.
//! This is the structure nginx and libev use for idle timers, and it avoids the stale entries a
//! heap with lazy deletion piles up at 100k re-arms per second.

use std::time::{Duration, Instant};

const NONE: u32 = u32::MAX;

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
    /// `KINDS` when not linked.
    kind: u8,
    deadline: Instant,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// Deadlines for slots `0..n` (the connection slab's keys).
pub struct Deadlines {
    durations: [Duration; KINDS],
    links: Vec<Link>,
    lists: [List; KINDS],
    epoch: Instant,
}

impl Deadlines {
    /// `durations` in `TimerKind` order: header, keep-alive, send, linger.
    pub fn new(durations: [Duration; KINDS]) -> Deadlines {
        Deadlines {
            durations,
            links: Vec::new(),
            lists: [List {
                head: NONE,
                tail: NONE,
            }; KINDS],
            epoch: Instant::now(),
        }
    }

    /// Arms (or re-arms) `slot` to fire `kind`'s duration after `now`, replacing any timer it had.
    pub fn arm(&mut self, slot: usize, kind: TimerKind, now: Instant) {
        self.disarm(slot);
        if slot >= self.links.len() {
            let unlinked = Link {
                prev: NONE,
                next: NONE,
                kind: KINDS as u8,
                deadline: self.epoch,
            };
            self.links.resize(slot + 1, unlinked);
        }
        let list = &mut self.lists[kind as usize];
        let slot32 = slot as u32;
        self.links[slot] = Link {
            prev: list.tail,
            next: NONE,
            kind: kind as u8,
            deadline: now + self.durations[kind as usize],
        };
        if list.tail == NONE {
            list.head = slot32;
        } else {
            self.links[list.tail as usize].next = slot32;
        }
        list.tail = slot32;
    }

    /// Removes `slot`'s timer, if it has one.
    pub fn disarm(&mut self, slot: usize) {
        let Some(&link) = self.links.get(slot) else {
            return;
        };
        if link.kind as usize >= KINDS {
            return;
        }
        let list = &mut self.lists[link.kind as usize];
        if link.prev == NONE {
            list.head = link.next;
        } else {
            self.links[link.prev as usize].next = link.next;
        }
        if link.next == NONE {
            list.tail = link.prev;
        } else {
            self.links[link.next as usize].prev = link.prev;
        }
        self.links[slot].kind = KINDS as u8;
    }

    /// The timer `slot` waits on, if any.
    pub fn armed(&self, slot: usize) -> Option<TimerKind> {
        let kind = self.links.get(slot)?.kind as usize;
        TimerKind::ALL.get(kind).copied()
    }

    /// The nearest deadline of all.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lists
            .iter()
            .filter(|list| list.head != NONE)
            .map(|list| self.links[list.head as usize].deadline)
            .min()
    }

    /// Takes one expired timer off its list, earliest kind first; call until it returns None.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(usize, TimerKind)> {
        for kind in TimerKind::ALL {
            let head = self.lists[kind as usize].head;
            if head != NONE && self.links[head as usize].deadline <= now {
                self.disarm(head as usize);
                return Some((head as usize, kind));
            }
        }
        None
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
}
