//! Dropping the user-space delay line stops its thread and closes its TUN devices, and the
//! run's namespaces are held by nothing of this process afterwards.
//!
//! Needs root; without it the test says `SKIPPED: needs root` and checks nothing. A test file
//! of its own: it looks at every thread and descriptor of the process.

mod split_support;

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use loadgen::netns::delay_line::THREAD_NAME;
use loadgen::netns::{
    enter_split_netns_with, with_namespace, DelayMechanism, DelayPreference, CLIENT_TUN, SERVER_TUN,
};
use loadgen::os::is_root;

/// Threads of this process named like the relay.
fn relay_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == THREAD_NAME)
        .count()
}

/// Descriptors of this process on `/dev/net/tun`.
fn tun_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.as_os_str() == "/dev/net/tun")
        .count()
}

/// A namespace's identity: device and inode of its nsfs file.
type NsId = (u64, u64);

fn ns_id(ns: &std::fs::File) -> NsId {
    let m = ns.metadata().unwrap();
    (m.dev(), m.ino())
}

/// Whether a thread of this process is inside the namespace `id` or a descriptor is a handle
/// on it.
fn holds_namespace(id: NsId) -> bool {
    let same = |m: std::fs::Metadata| (m.dev(), m.ino()) == id;
    let threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::metadata(task.ok()?.path().join("ns/net")).ok())
        .any(same);
    let handles = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::metadata(fd.ok()?.path()).ok())
        .any(same);
    threads || handles
}

fn ip_link_show(device: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", device])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn dropping_the_delay_line_stops_it_and_its_devices_go_away() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let (before_threads, before_fds) = (relay_threads(), tun_descriptors());
    assert_eq!((before_threads, before_fds), (0, 0));
    let built = std::thread::spawn(|| {
        let split = match enter_split_netns_with(
            Duration::from_millis(30),
            DelayPreference::TunRelay,
            &[0],
        )
        .unwrap()
        {
            Ok(split) => split,
            Err(reason) if reason.contains("iproute2") => {
                println!("SKIPPED: {reason}");
                return None;
            }
            Err(reason) => panic!("the delay line failed: {reason}"),
        };
        assert_eq!(split.delay_mechanism, Some(DelayMechanism::TunRelay));
        let line = split.delay_line.as_ref().unwrap();
        assert_eq!(line.cpus(), &[0]);
        assert!(line.is_running());
        assert_eq!(relay_threads(), 1);
        assert_eq!(tun_descriptors(), 2);
        // The relay runs on CPU 0 only.
        let status =
            std::fs::read_to_string(format!("/proc/self/task/{}/status", line.tid())).unwrap();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(allowed, "0");
        println!("sysctls: {:?}", split.isolation.sysctls_set);
        let (client_ns, server_ns) = (
            split.client_ns.try_clone().unwrap(),
            split.server_ns.try_clone().unwrap(),
        );
        for (ns, device) in [(&client_ns, CLIENT_TUN), (&server_ns, SERVER_TUN)] {
            let shown = with_namespace(ns, || {
                Command::new("ip")
                    .args(["-d", "link", "show", device])
                    .output()
                    .unwrap()
            })
            .unwrap();
            println!("{}", String::from_utf8_lossy(&shown.stdout));
            assert!(shown.status.success(), "{device} missing");
        }
        assert!(
            ip_link_show(CLIENT_TUN),
            "the thread is in the clients' namespace"
        );

        let started = Instant::now();
        drop(split);
        let stopped_in = started.elapsed();
        println!("dropped in {stopped_in:?}");
        assert!(stopped_in < Duration::from_secs(2), "{stopped_in:?}");
        assert_eq!(relay_threads(), 0, "the relay thread still runs");
        assert_eq!(tun_descriptors(), 0, "a TUN descriptor is still open");
        // The namespaces still exist (our handles), but their TUN devices are gone.
        for (ns, device) in [(&client_ns, CLIENT_TUN), (&server_ns, SERVER_TUN)] {
            let present = with_namespace(ns, || ip_link_show(device)).unwrap();
            assert!(!present, "{device} outlived its descriptor");
        }
        Some((ns_id(&client_ns), ns_id(&server_ns)))
    })
    .join()
    .unwrap();
    let Some((client, server)) = built else {
        return;
    };
    // The building thread is gone and the handles are closed: nothing of this process holds
    // either namespace, so the kernel frees them (and their veth) now.
    assert!(
        !holds_namespace(client),
        "the clients' namespace is still held"
    );
    assert!(
        !holds_namespace(server),
        "the server's namespace is still held"
    );
    for device in [CLIENT_TUN, SERVER_TUN, "abv-c", "abv-s"] {
        assert!(!ip_link_show(device), "{device} is in the host namespace");
    }
    assert_eq!(relay_threads(), 0);
}
