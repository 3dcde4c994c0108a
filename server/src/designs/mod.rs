//! The concurrency cores the server can run. Today: the single-threaded readiness loop that is
//! Afterburner's design; the designs it is compared with (threads, processes, several loops,
//! poll/select) join here, one file each, behind the same `serve` signature.

pub mod event_loop;
