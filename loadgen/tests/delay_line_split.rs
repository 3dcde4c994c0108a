//! The split namespaces with the user-space delay line (TUN devices and a relay thread instead
//! of netem): the delayed sources see the real round-trip time, the fast ones do not, bulk
//! data crosses intact and the relay counts it.
//!
//! Needs root; without it each test says `SKIPPED: needs root` and checks nothing.

mod split_support;
use split_support::{connect_from, echo_server, round_trip};

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::time::{Duration, Instant};

use loadgen::netns::delay_line::DelayLineStats;
use loadgen::netns::{
    enter_split_netns_with, DelayMechanism, DelayPreference, SplitNetwork, CLIENT_TUN, SERVER_TUN,
};
use loadgen::os::is_root;

/// Runs `test` on a thread of its own in the clients' namespace of a split network delayed by
/// the user-space delay line, unless not root or iproute2 is missing.
fn with_relay(one_way_delay: Duration, test: impl FnOnce(SplitNetwork) + Send + 'static) {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    std::thread::spawn(move || {
        match enter_split_netns_with(one_way_delay, DelayPreference::TunRelay, &[]).unwrap() {
            Ok(split) => test(split),
            Err(reason) if reason.contains("iproute2") => println!("SKIPPED: {reason}"),
            Err(reason) => panic!("the delay line failed: {reason}"),
        }
    })
    .join()
    .unwrap();
}

#[test]
fn the_delay_line_gives_delayed_sources_the_round_trip_and_leaves_fast_ones_alone() {
    with_relay(Duration::from_millis(50), |split| {
        assert_eq!(split.delay_mechanism, Some(DelayMechanism::TunRelay));
        let line = split.delay_line.as_ref().expect("a running delay line");
        assert!(line.is_running());
        assert_eq!(line.one_way_delay(), Duration::from_millis(50));
        let path = split.isolation.delay_path.as_ref().unwrap();
        assert_eq!(path.one_way_delay_ms, 50.0);
        assert!(
            path.commands[0].starts_with(
                "user-space delay line on tun devices abt-c <-> abt-s, 50 ms each way"
            ),
            "{:?}",
            path.commands
        );
        assert_eq!(
            path.commands[1],
            "netem not used: the user-space delay line was asked for"
        );
        assert!(
            path.commands.iter().all(|c| !c.starts_with("tc ")),
            "no qdisc with the delay line: {:?}",
            path.commands
        );
        for device in [CLIENT_TUN, SERVER_TUN] {
            assert!(
                path.commands.iter().any(|c| c.contains(device)),
                "{device}: {:?}",
                path.commands
            );
        }

        let server = echo_server(&split);
        for source in [split.delayed_sources[0], split.delayed_sources[31]] {
            let (connect, echo) = round_trip(source, server);
            println!("{source}: connect {connect:?}, echo {echo:?}");
            let expected = Duration::from_millis(95)..=Duration::from_millis(200);
            assert!(expected.contains(&connect), "{source}: connect {connect:?}");
            assert!(expected.contains(&echo), "{source}: echo {echo:?}");
        }
        for source in [split.fast_sources[0], split.fast_sources[31]] {
            let (connect, echo) = round_trip(source, server);
            println!("{source}: connect {connect:?}, echo {echo:?}");
            assert!(connect < Duration::from_millis(20), "{source}: {connect:?}");
            assert!(echo < Duration::from_millis(20), "{source}: {echo:?}");
        }
        let stats = split.delay_line.as_ref().unwrap().stats();
        println!("{stats:?}");
        // Two delayed connections: handshake, a byte each way and its ACKs at least; the fast
        // ones never touch the line.
        assert!(
            stats.packets_up >= 2 * 3 && stats.packets_down >= 2 * 2,
            "{stats:?}"
        );
        assert_eq!(stats.dropped, 0, "{stats:?}");
    });
}

/// A deterministic pseudo-random byte stream (xorshift), so a misplaced or damaged segment
/// cannot pass unnoticed.
fn pattern(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sends `data` from the server's side to one connection from `source`; what arrived.
fn download(split: &SplitNetwork, source: IpAddr, data: Vec<u8>) -> Vec<u8> {
    let listener = split
        .in_server_namespace(|| TcpListener::bind((split.server_address, 0)).unwrap())
        .unwrap();
    let server = listener.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(&data).unwrap();
    });
    let (mut stream, _) = connect_from(source, server);
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    sender.join().unwrap();
    received
}

fn per_packet_us(stats: &DelayLineStats) -> f64 {
    stats.cpu_us as f64 / (stats.packets_up + stats.packets_down).max(1) as f64
}

#[test]
fn a_megabyte_crosses_the_delay_line_intact_and_is_counted() {
    with_relay(Duration::from_millis(50), |mut split| {
        let data = pattern(1 << 20, 0x9e37_79b9_7f4a_7c15);
        let started = Instant::now();
        let received = download(&split, split.delayed_sources[3], data.clone());
        let took = started.elapsed();
        assert_eq!(received.len(), data.len());
        assert!(received == data, "the data arrived damaged");
        // Let the last ACKs and FINs cross before stopping.
        std::thread::sleep(Duration::from_millis(150));
        let stats = split.delay_line.take().unwrap().stop();
        println!(
            "1 MiB in {took:?}: {stats:?}; relay CPU {:.2} µs per packet",
            per_packet_us(&stats)
        );
        // 1 MiB in segments of at most 1460 bytes, each with a 40-byte header at least.
        let segments = (1u64 << 20).div_ceil(1460);
        assert!(stats.packets_down >= segments, "{stats:?}");
        assert!(stats.bytes_down >= (1 << 20) + 40 * segments, "{stats:?}");
        assert!(stats.packets_up >= 3, "handshake and ACKs: {stats:?}");
        assert!(stats.bytes_up >= 40 * stats.packets_up, "{stats:?}");
        assert_eq!(stats.dropped, 0, "{stats:?}");
        assert_eq!(stats.queued_at_stop, 0, "{stats:?}");
        assert!(stats.max_queue_packets >= 1, "{stats:?}");
        // Not a time check: the relay must have run at all.
        assert!(stats.cpu_us > 0, "{stats:?}");
        // Slow start over a 100 ms round trip: a few round trips at least.
        assert!(took >= Duration::from_millis(300), "{took:?}");
    });
}

#[test]
fn auto_uses_netem_where_the_kernel_has_it_and_the_delay_line_elsewhere() {
    if std::env::var_os(loadgen::netns::DELAY_LINE_ENV).is_some() {
        println!("SKIPPED: {} is set", loadgen::netns::DELAY_LINE_ENV);
        return;
    }
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    std::thread::spawn(|| {
        let split = match enter_split_netns_with(Duration::from_millis(20), Default::default(), &[])
            .unwrap()
        {
            Ok(split) => split,
            Err(reason) if reason.contains("iproute2") => {
                println!("SKIPPED: {reason}");
                return;
            }
            Err(reason) => panic!("Auto must build one or the other: {reason}"),
        };
        let path = split.isolation.delay_path.as_ref().unwrap();
        println!("{:?}: {:#?}", split.delay_mechanism, path.commands);
        match split.delay_mechanism {
            Some(DelayMechanism::Netem) => {
                assert!(split.delay_line.is_none() && split.why_not_netem.is_none());
                assert!(path.commands.iter().any(|c| c.contains("netem delay 20ms")));
            }
            Some(DelayMechanism::TunRelay) => {
                let why = split.why_not_netem.as_deref().unwrap();
                assert!(
                    why.contains("sch_netem")
                        || why.contains("sch_prio")
                        || why.contains("cls_u32"),
                    "{why}"
                );
                assert!(path.commands[0].starts_with("user-space delay line"));
                assert_eq!(path.commands[1], format!("netem not used: {why}"));
                assert!(path.commands.iter().all(|c| !c.starts_with("tc ")));
                assert!(split.delay_line.as_ref().unwrap().is_running());
            }
            None => panic!("no delay mechanism for a 20 ms delay"),
        }
        let server = echo_server(&split);
        let (connect, echo) = round_trip(split.delayed_sources[0], server);
        println!("connect {connect:?}, echo {echo:?}");
        let expected = Duration::from_millis(38)..=Duration::from_millis(150);
        assert!(expected.contains(&connect), "connect {connect:?}");
        assert!(expected.contains(&echo), "echo {echo:?}");
    })
    .join()
    .unwrap();
}

#[test]
fn a_zero_delay_builds_no_delay_line() {
    with_relay(Duration::ZERO, |split| {
        assert_eq!(split.delay_mechanism, None);
        assert!(split.delay_line.is_none());
        let path = split.isolation.delay_path.as_ref().unwrap();
        assert!(
            path.commands.iter().all(|c| !c.contains("abt-")),
            "{:?}",
            path.commands
        );
    });
}

/// Informative: how many packets a second the relay moves in a short bulk test (8 connections
/// downloading over a 1 ms line for about a second), and its CPU per packet. Not asserted
/// beyond the data arriving whole.
#[test]
fn bulk_packet_rate_is_reported() {
    with_relay(Duration::from_millis(1), |mut split| {
        let listener = split
            .in_server_namespace(|| TcpListener::bind((split.server_address, 0)).unwrap())
            .unwrap();
        let server = listener.local_addr().unwrap();
        let streams = 8;
        let run_for = Duration::from_millis(1000);
        let sender = std::thread::spawn(move || {
            let chunk = vec![0x5au8; 256 << 10];
            let mut senders = Vec::new();
            for _ in 0..streams {
                let (mut stream, _) = listener.accept().unwrap();
                let chunk = chunk.clone();
                senders.push(std::thread::spawn(move || {
                    let started = Instant::now();
                    while started.elapsed() < run_for {
                        if stream.write_all(&chunk).is_err() {
                            return;
                        }
                    }
                }));
            }
            for s in senders {
                s.join().unwrap();
            }
        });
        let before = split.delay_line.as_ref().unwrap().stats();
        let started = Instant::now();
        let receivers: Vec<_> = (0..streams)
            .map(|i| {
                let (mut stream, _) = connect_from(split.delayed_sources[i], server);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 20];
                    let mut total = 0u64;
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        assert!(buf[..n].iter().all(|&b| b == 0x5a));
                        total += n as u64;
                    }
                    total
                })
            })
            .collect();
        let total: u64 = receivers.into_iter().map(|r| r.join().unwrap()).sum();
        let took = started.elapsed();
        sender.join().unwrap();
        let stats = split.delay_line.take().unwrap().stop();
        let packets =
            stats.packets_up + stats.packets_down - before.packets_up - before.packets_down;
        println!(
            "bulk: {:.1} MB in {took:?} ({:.0} MB/s), {packets} packets = {:.0} packets/s \
             through the relay, relay CPU {:.2} µs per packet, {stats:?}",
            total as f64 / 1e6,
            total as f64 / 1e6 / took.as_secs_f64(),
            packets as f64 / took.as_secs_f64(),
            per_packet_us(&stats),
        );
        assert!(total > 0);
    });
}
