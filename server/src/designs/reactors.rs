//! The `reactors` design: one `loop` (`event_loop.rs`) per CPU, each on its own thread pinned
//! to its own CPU, with its own listening socket bound to the same address with SO_REUSEPORT,
//! so that the kernel spreads new connections over the loops (by a hash of their addresses)
//! and the loops share nothing while serving: no lock, no shared queue, no shared counter.
//! The calling thread only relays the signals: SIGINT/SIGTERM to every loop, and at SIGUSR1 a
//! request to each loop for its counters, which it sums into one `--stats` snapshot.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;

use rustix::event::{PollFd, PollFlags};
use rustix::thread::CpuSet;

use super::event_loop::{self, loop_error, Snapshots};
use super::Serving;
use crate::site::Site;
use crate::stats::{Counters, StatsFile};
use crate::{ServerConfig, ServerError, SignalSockets};

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[(
    "--cpu",
    "each loop is pinned to its own CPU, round-robin over the CPUs the server may run on",
)];

/// What a loop tells the relaying thread.
enum Report {
    /// Its counters so far, answering a snapshot request.
    Snapshot { index: usize, counters: Counters },
    /// It has ended: its counters, or why it failed. Sent exactly once per loop.
    Finished {
        index: usize,
        result: Result<Counters, ServerError>,
    },
}

/// The relaying thread's ends of one loop's signal sockets.
struct LoopControl {
    stop: UnixStream,
    snapshot: UnixStream,
}

/// Serves with `--workers` loops (default: one per CPU the server may run on, from
/// sched_getaffinity) until SIGINT/SIGTERM and the grace period are over; see
/// [`super::serve`]. `max_conns` is split evenly over the loops (each at least 1). Returns the
/// loops' counters summed ([`Counters::merge`]: peaks add up, a bound on the true peak).
///
/// Errors: [`ServerError::Listen`] if another listener cannot be bound to the address,
/// [`ServerError::Pin`] if a loop cannot be pinned to its CPU, [`ServerError::EventLoop`] if
/// the affinity cannot be read, a thread or socket pair cannot be made, or a loop fails; the
/// first error of a loop stops the others.
pub fn serve(serving: Serving<'_>) -> Result<Counters, ServerError> {
    let Serving {
        listener,
        signals,
        site,
        config,
        max_conns,
        stats,
    } = serving;
    let cpus =
        allowed_cpus().map_err(loop_error("reading the CPUs allowed (sched_getaffinity)"))?;
    let loops = config.workers.unwrap_or(cpus.len()).max(1);
    let address = listener.local_addr().map_err(|error| ServerError::Listen {
        action: "reading the address bound for",
        address: config.listen,
        error,
    })?;
    let mut listeners = vec![listener];
    for _ in 1..loops {
        listeners.push(crate::bind(address, config.backlog, true)?);
    }
    let conns_per_loop =
        |index: usize| (max_conns / loops + usize::from(index < max_conns % loops)).max(1);
    let cpu_of = |index: usize| cpus[index % cpus.len()];
    eprintln!(
        "afterburner: --design reactors: {loops} loops on CPUs {:?}, at most {:?} connections each",
        (0..loops).map(cpu_of).collect::<Vec<_>>(),
        (0..loops).map(conns_per_loop).collect::<Vec<_>>(),
    );

    let socket_pair = || -> Result<(UnixStream, mio::net::UnixStream), ServerError> {
        let (ours, theirs) = UnixStream::pair().map_err(loop_error("making a socket pair"))?;
        for end in [&ours, &theirs] {
            end.set_nonblocking(true)
                .map_err(loop_error("making a socket pair non-blocking"))?;
        }
        Ok((ours, mio::net::UnixStream::from_std(theirs)))
    };
    let (done_writer, done_reader) = socket_pair()?;
    let (reports, reports_received) = mpsc::channel();

    // Every descriptor of every loop is made before the first loop starts: the loops share the
    // process's descriptor table, and a loop accepting already could otherwise take the last
    // descriptors the next one needs to start (its epoll instance, its signal sockets), which
    // under a low `ulimit -n` would fail the server instead of pausing its accepts.
    let mut prepared = Vec::with_capacity(loops);
    for (index, listener) in listeners.into_iter().enumerate() {
        let (stop, loop_stop) = socket_pair()?;
        let (snapshot, loop_snapshot) = socket_pair()?;
        let done = done_writer
            .try_clone()
            .map_err(loop_error("duplicating a socket"))?;
        let poll = mio::Poll::new().map_err(loop_error("creating the epoll instance"))?;
        let end = LoopEnd {
            index,
            reports: reports.clone(),
            done,
            result: None,
        };
        let run = LoopRun {
            index,
            cpu: cpu_of(index),
            max_conns: conns_per_loop(index),
            poll,
            listener,
            signals: SignalSockets {
                stop: loop_stop,
                snapshot: loop_snapshot,
            },
            site,
            config,
        };
        prepared.push((run, end, LoopControl { stop, snapshot }));
    }

    thread::scope(|scope| {
        let mut controls = Vec::with_capacity(loops);
        let mut results: Vec<Option<Result<Counters, ServerError>>> = Vec::new();
        let mut failed_to_start = None;
        for (run, end, control) in prepared {
            let started = thread::Builder::new()
                .name(format!("reactor-{}", run.index))
                .spawn_scoped(scope, move || run.serve(end))
                .map_err(loop_error("starting a loop's thread"));
            match started {
                Ok(_) => {
                    controls.push(control);
                    results.push(None);
                }
                Err(error) => {
                    failed_to_start = Some(error);
                    break;
                }
            }
        }
        // Only the loops hold senders now: if every loop is gone, `recv` says so.
        drop(reports);
        let mut relay = Relay {
            controls,
            results,
            reports: reports_received,
            site,
            stats,
            stopping: false,
        };
        if failed_to_start.is_some() {
            relay.stop_all();
        }
        let relayed = relay.run(signals, done_reader);
        let summed = relay.sum();
        match (failed_to_start, relayed, summed) {
            (Some(error), _, _) | (None, Err(error), _) => Err(error),
            (None, Ok(()), summed) => summed,
        }
    })
}

/// The CPUs the calling thread may run on, in ascending order.
fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect();
    if cpus.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(cpus)
}

/// What one loop's thread needs.
struct LoopRun<'a> {
    index: usize,
    cpu: usize,
    max_conns: usize,
    /// The loop's epoll instance, made before any loop started (see [`serve`]).
    poll: mio::Poll,
    listener: std::net::TcpListener,
    signals: SignalSockets,
    site: &'a Site,
    config: &'a ServerConfig,
}

impl LoopRun<'_> {
    fn serve(self, mut end: LoopEnd) {
        let mut set = CpuSet::new();
        set.set(self.cpu);
        if let Err(error) = rustix::thread::sched_setaffinity(None, &set) {
            end.result = Some(Err(ServerError::Pin {
                cpu: self.cpu,
                error: error.into(),
            }));
            return;
        }
        let reports = end.reports.clone();
        let index = self.index;
        let snapshots = Snapshots::Report(Box::new(move |counters: &Counters| {
            // The relay waits for this answer; it only goes away once every loop has ended.
            let _ = reports.send(Report::Snapshot {
                index,
                counters: counters.clone(),
            });
        }));
        end.result = Some(event_loop::serve_with(
            self.poll,
            self.listener,
            self.signals,
            self.site,
            self.config,
            self.max_conns,
            snapshots,
        ));
    }
}

/// Sends a loop's [`Report::Finished`] and wakes the relay when the loop's thread ends, however
/// it ends: the relay counts on one such report from every loop.
struct LoopEnd {
    index: usize,
    reports: mpsc::Sender<Report>,
    done: UnixStream,
    result: Option<Result<Counters, ServerError>>,
}

impl Drop for LoopEnd {
    fn drop(&mut self) {
        let result = self.result.take().unwrap_or_else(|| {
            Err(ServerError::Design {
                design: "reactors",
                message: format!(
                    "loop {} ended without its counters (it panicked)",
                    self.index
                ),
            })
        });
        let _ = self.reports.send(Report::Finished {
            index: self.index,
            result,
        });
        let _ = (&self.done).write(&[1]);
    }
}

/// The calling thread's part: relays signals to the loops and gathers what they report.
struct Relay<'a> {
    controls: Vec<LoopControl>,
    /// Each loop's end, once it has ended.
    results: Vec<Option<Result<Counters, ServerError>>>,
    reports: mpsc::Receiver<Report>,
    site: &'a Site,
    stats: Option<&'a mut StatsFile>,
    stopping: bool,
}

impl Relay<'_> {
    /// Waits on the process's signal sockets and on the loops' ends until every loop has ended.
    fn run(
        &mut self,
        signals: SignalSockets,
        done: mio::net::UnixStream,
    ) -> Result<(), ServerError> {
        let SignalSockets { stop, snapshot } = signals;
        while self.results.iter().any(Option::is_none) {
            let mut fds = [
                PollFd::new(&stop, PollFlags::IN),
                PollFd::new(&snapshot, PollFlags::IN),
                PollFd::new(&done, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(error) => {
                    // The loops must still stop, or the scope would wait for them forever.
                    self.stop_all();
                    return Err(loop_error("poll")(error.into()));
                }
            }
            let [stop_ready, snapshot_ready, done_ready] = fds.map(|fd| !fd.revents().is_empty());
            if stop_ready {
                super::drain_signal(&stop);
                self.stop_all();
            }
            if done_ready {
                super::drain_signal(&done);
                while let Ok(report) = self.reports.try_recv() {
                    self.record(report);
                }
            }
            if snapshot_ready {
                super::drain_signal(&snapshot);
                self.write_snapshot();
            }
            if self.results.iter().flatten().any(Result::is_err) {
                // One loop failed: the server as a whole is failing; stop the others.
                self.stop_all();
            }
        }
        Ok(())
    }

    /// Tells every loop still running to stop (once).
    fn stop_all(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for (control, result) in self.controls.iter().zip(&self.results) {
            if result.is_none() {
                let _ = (&control.stop).write(&[1]);
            }
        }
    }

    fn record(&mut self, report: Report) {
        // A loop whose thread could not be started (nor those after it) has no place here: its
        // end reports as it is dropped, and the failure to start is the server's error.
        if let Report::Finished { index, result } = report {
            if let Some(place) = self.results.get_mut(index) {
                *place = Some(result);
            }
        }
    }

    /// Asks every running loop for its counters, waits for each answer (or its end), and writes
    /// their sum as one snapshot. Without `--stats`, SIGUSR1 is ignored.
    fn write_snapshot(&mut self) {
        if self.stats.is_none() {
            return;
        }
        let mut waiting: Vec<bool> = self.results.iter().map(Option::is_none).collect();
        for (control, &asked) in self.controls.iter().zip(&waiting) {
            if asked {
                let _ = (&control.snapshot).write(&[1]);
            }
        }
        let mut sum = Counters::new(self.site.rules().count());
        for counters in self.results.iter().flatten().flatten() {
            sum.merge(counters);
        }
        while waiting.contains(&true) {
            match self.reports.recv() {
                Ok(Report::Snapshot { index, counters }) => {
                    if waiting.get_mut(index).is_some_and(std::mem::take) {
                        sum.merge(&counters);
                    }
                }
                Ok(Report::Finished { index, result }) => {
                    if index >= waiting.len() {
                        continue; // a loop that never started (see `record`)
                    }
                    if let Ok(counters) = &result {
                        sum.merge(counters);
                    }
                    waiting[index] = false;
                    self.results[index] = Some(result);
                }
                Err(mpsc::RecvError) => break, // every loop is gone
            }
        }
        let stats = self.stats.as_deref_mut().expect("checked above");
        if let Err(error) = stats.write(&sum, self.site.rules(), false) {
            eprintln!("afterburner: stats snapshot: {error}");
        }
    }

    /// Every loop's final counters summed, or the first loop's error.
    fn sum(&mut self) -> Result<Counters, ServerError> {
        let mut sum = Counters::new(self.site.rules().count());
        for result in self.results.drain(..) {
            sum.merge(&result.expect("every loop has ended")?);
        }
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_cpus_are_the_affinity_mask() {
        let cpus = allowed_cpus().unwrap();
        let mask = rustix::thread::sched_getaffinity(None).unwrap();
        assert_eq!(cpus.len(), mask.count() as usize);
        assert!(cpus.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(cpus.iter().all(|&cpu| mask.is_set(cpu)));
    }
}
