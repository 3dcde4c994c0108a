//! The split namespaces of `isolation` on this machine: a veth path from the clients' namespace
//! to the server's, on which netem gives the delayed sources a real round-trip time (twice the
//! one-way delay, seen by the kernel's own TCP) and leaves the fast sources alone.
//!
//! Needs root; without it each test says `SKIPPED: needs root` and checks nothing. A kernel
//! without `sch_netem` (or `sch_prio`, `cls_u32`) cannot delay: the test then checks that the
//! failure is reported and leaves the thread where it was, and measures the undelayed path.

mod split_support;
use split_support::{echo_server, round_trip};

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use loadgen::netns::{
    current_namespace, enter_split_netns, SplitNetwork, CLIENT_VETH, NETEM_LIMIT_PACKETS,
};
use loadgen::os::is_root;
use reports::model::IsolationMode;

/// The inode of a namespace handle: equal inodes, same namespace.
fn ns_inode(ns: &std::fs::File) -> u64 {
    ns.metadata().unwrap().ino()
}

fn here() -> u64 {
    ns_inode(&current_namespace().unwrap())
}

fn assert_fast(source: IpAddr, server: SocketAddr) {
    let (connect, echo) = round_trip(source, server);
    println!("{source}: connect {connect:?}, echo {echo:?}");
    assert!(connect < Duration::from_millis(20), "{source}: {connect:?}");
    assert!(echo < Duration::from_millis(20), "{source}: {echo:?}");
}

/// Builds an undelayed split network and checks its shape; the thread ends in the clients'
/// namespace.
fn undelayed() -> SplitNetwork {
    let home = here();
    let split = enter_split_netns(Duration::ZERO)
        .unwrap()
        .unwrap_or_else(|reason| panic!("the undelayed split network failed: {reason}"));
    let (server, client) = (ns_inode(&split.server_ns), ns_inode(&split.client_ns));
    assert!(server != client && server != home && client != home);
    assert_eq!(
        here(),
        client,
        "the thread must end in the clients' namespace"
    );
    assert_eq!(split.isolation.mode, IsolationMode::PrivateNetns);
    let path = split.isolation.delay_path.as_ref().unwrap();
    assert_eq!(path.one_way_delay_ms, 0.0);
    assert!(
        path.commands.iter().all(|c| !c.starts_with("tc ")),
        "no qdisc without a delay: {:?}",
        path.commands
    );
    assert_eq!(split.fast_sources.len(), 32);
    assert_eq!(split.delayed_sources.len(), 32);
    assert_eq!(split.server_address.to_string(), "198.18.0.1");
    split
}

#[test]
fn delayed_sources_see_the_round_trip_and_fast_ones_do_not() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    std::thread::spawn(|| {
        let home = here();
        let split = match enter_split_netns(Duration::from_millis(50)).unwrap() {
            Ok(split) => split,
            Err(reason) if reason.contains("iproute2") => {
                println!("SKIPPED: {reason}");
                return;
            }
            Err(reason) => {
                assert!(
                    reason.contains("sch_netem")
                        || reason.contains("sch_prio")
                        || reason.contains("cls_u32"),
                    "as root with iproute2, only a missing kernel feature may stop it: {reason}"
                );
                assert_eq!(here(), home, "after a failure the thread must be back home");
                println!("SKIPPED (the 50 ms delay): {reason}");
                // The path itself still works without a delay: everyone is fast.
                let split = undelayed();
                let server = echo_server(&split);
                assert_fast(split.delayed_sources[0], server);
                assert_fast(split.fast_sources[0], server);
                return;
            }
        };
        assert_eq!(here(), ns_inode(&split.client_ns));
        let path = split.isolation.delay_path.as_ref().unwrap();
        assert_eq!(path.one_way_delay_ms, 50.0);
        let limit = format!("limit {NETEM_LIMIT_PACKETS}");
        assert_eq!(
            path.commands
                .iter()
                .filter(|c| c.contains("netem delay 50ms") && c.contains(&limit))
                .count(),
            2,
            "{:?}",
            path.commands
        );
        let server = echo_server(&split);
        for source in [split.delayed_sources[0], split.delayed_sources[31]] {
            let (connect, echo) = round_trip(source, server);
            println!("{source}: connect {connect:?}, echo {echo:?}");
            let expected = Duration::from_millis(90)..=Duration::from_millis(200);
            assert!(expected.contains(&connect), "{source}: connect {connect:?}");
            assert!(expected.contains(&echo), "{source}: echo {echo:?}");
        }
        for source in [split.fast_sources[0], split.fast_sources[31]] {
            assert_fast(source, server);
        }
    })
    .join()
    .unwrap();
}

#[test]
fn an_undelayed_split_network_connects_every_source_and_leaves_the_host_alone() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let started = Instant::now();
    std::thread::spawn(|| {
        let split = undelayed();
        let server = echo_server(&split);
        for &source in split.delayed_sources.iter().chain(&split.fast_sources) {
            let (connect, echo) = round_trip(source, server);
            assert!(connect < Duration::from_millis(20), "{source}: {connect:?}");
            assert!(echo < Duration::from_millis(20), "{source}: {echo:?}");
        }
        let sysctls = &split.isolation.sysctls_set;
        for side in ["server ns: ", "client ns: "] {
            assert!(
                sysctls
                    .iter()
                    .any(|s| s.starts_with(side) && s.contains("tcp_max_tw_buckets=4000000")),
                "{sysctls:?}"
            );
        }
    })
    .join()
    .unwrap();
    // The veth lives in the run's namespaces only, never in the host's.
    if let Ok(output) = Command::new("ip")
        .args(["link", "show", CLIENT_VETH])
        .output()
    {
        assert!(
            !output.status.success(),
            "{CLIENT_VETH} leaked into the host namespace"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}
