//! The delay line's relay on its own, between two pairs of seqpacket sockets (no root, no TUN
//! devices): packets cross both ways whole and in order, never before their delay; full queues
//! drop and count; the handle stops the thread and closes the ends.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use loadgen::netns::delay_line::{
    DelayLine, DelayLineConfig, DelayLineEnd, DelayLineHandle, CHUNK_BYTES, MAX_PACKET,
};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use socket2::Socket;

/// A connected pair of seqpacket sockets: (the test's end, the relay's end).
fn pair() -> (Socket, OwnedFd) {
    let (ours, relays) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let ours = Socket::from(ours);
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (ours, relays)
}

/// The relay between a client and a server socket, and the test's ends of both.
fn line(config: &DelayLineConfig) -> (Socket, Socket, DelayLineHandle) {
    let (client, client_end) = pair();
    let (server, server_end) = pair();
    let handle = DelayLine::start(
        DelayLineEnd::new(client_end),
        DelayLineEnd::new(server_end),
        config,
    )
    .unwrap();
    (client, server, handle)
}

fn receive(socket: &Socket) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; MAX_PACKET];
    // A seqpacket read is one whole packet.
    let n = (&*socket).read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Packet `i` of a stream: its number, then a size and contents that vary with it.
fn packet(i: u32, tag: u8) -> Vec<u8> {
    let len = [1, 40, 1500, 9000, 300][i as usize % 5].max(5);
    let mut p = vec![tag ^ (i as u8); len];
    p[..4].copy_from_slice(&i.to_le_bytes());
    p
}

#[test]
fn packets_cross_both_ways_whole_in_order_and_never_early() {
    let delay = Duration::from_millis(30);
    let (client, server, handle) = line(&DelayLineConfig::new(delay, &[]));
    let count = 200u32;
    let mut sent_up = Vec::new();
    let mut sent_down = Vec::new();
    for i in 0..count {
        sent_up.push(Instant::now());
        client.send(&packet(i, 0xa5)).unwrap();
        sent_down.push(Instant::now());
        server.send(&packet(i, 0x3c)).unwrap();
    }
    let (mut bytes_up, mut bytes_down) = (0, 0);
    for i in 0..count {
        let up = receive(&server).unwrap();
        let arrived = Instant::now();
        assert_eq!(up, packet(i, 0xa5), "packet {i} up");
        assert!(
            arrived - sent_up[i as usize] >= delay,
            "packet {i} up came early"
        );
        bytes_up += up.len() as u64;
        let down = receive(&client).unwrap();
        let arrived = Instant::now();
        assert_eq!(down, packet(i, 0x3c), "packet {i} down");
        assert!(
            arrived - sent_down[i as usize] >= delay,
            "packet {i} down came early"
        );
        bytes_down += down.len() as u64;
    }
    let live = handle.stats();
    assert!(handle.is_running());
    let stats = handle.stop();
    println!("{stats:?}");
    assert_eq!((stats.packets_up, stats.packets_down), (200, 200));
    assert_eq!((stats.bytes_up, stats.bytes_down), (bytes_up, bytes_down));
    assert_eq!((stats.dropped, stats.queued_at_stop), (0, 0));
    assert!(stats.max_queue_packets >= 1 && stats.max_queue_packets <= 200);
    assert!(live.packets_up <= stats.packets_up && live.cpu_us <= stats.cpu_us);
}

/// Waits (generously) until the relay has taken in `n` packets (queued or dropped).
fn wait_taken_in(handle: &DelayLineHandle, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = handle.stats();
        if s.dropped + s.queued_at_stop + s.packets_up + s.packets_down >= n {
            return;
        }
        assert!(Instant::now() < deadline, "the relay took in only {s:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_queue_at_its_packet_bound_drops_and_counts() {
    let mut config = DelayLineConfig::new(Duration::from_secs(600), &[]);
    config.queue_packets = 10;
    let (client, _server, handle) = line(&config);
    for i in 0..50 {
        client.send(&packet(i, 1)).unwrap();
    }
    wait_taken_in(&handle, 50);
    let stats = handle.stop();
    println!("{stats:?}");
    assert_eq!(stats.queued_at_stop, 10);
    assert_eq!(stats.dropped, 40);
    assert_eq!(stats.max_queue_packets, 10);
    assert_eq!(stats.packets_up + stats.packets_down, 0);
}

#[test]
fn a_queue_at_its_byte_bound_drops_and_counts() {
    let mut config = DelayLineConfig::new(Duration::from_secs(600), &[]);
    config.queue_bytes = 0; // the least: two chunks
    let (_client, server, handle) = line(&config);
    let (count, size) = (100, 60_000);
    for i in 0..count {
        server.send(&vec![i as u8; size]).unwrap();
    }
    wait_taken_in(&handle, count);
    let stats = handle.stop();
    println!("{stats:?}");
    assert!(stats.dropped > 0, "{stats:?}");
    assert_eq!(stats.dropped + stats.queued_at_stop, count);
    assert!(stats.max_queue_bytes <= 2 * CHUNK_BYTES as u64, "{stats:?}");
    assert_eq!(stats.max_queue_bytes, size as u64 * stats.queued_at_stop);
}

#[test]
fn dropping_the_handle_stops_the_relay_and_closes_its_ends() {
    let (client, server, handle) = line(&DelayLineConfig::new(Duration::from_secs(600), &[]));
    client.send(b"held").unwrap();
    wait_taken_in(&handle, 1);
    let started = Instant::now();
    drop(handle);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The relay's ends are closed: end of stream on both of ours, and the held packet is gone.
    assert_eq!(receive(&client).unwrap(), b"");
    assert_eq!(receive(&server).unwrap(), b"");
}

#[test]
fn a_cpu_that_does_not_exist_is_an_error() {
    let (_, client_end) = pair();
    let (_, server_end) = pair();
    let error = DelayLine::start(
        DelayLineEnd::new(client_end),
        DelayLineEnd::new(server_end),
        &DelayLineConfig::new(Duration::from_millis(1), &[100_000]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("100000"), "{error}");
}
