//! The sampler across the split mode's two namespaces: TIME_WAITs counted on the server's side
//! in the server's namespace and on the clients' side in the clients', each side's told apart
//! by when they began, `sockstat` and TcpExt added up over both (listen overflows happen in the
//! server's), the generator's own memory.
//!
//! Needs root for the namespaces; without it the test says `SKIPPED: needs root`.

mod split_support;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgen::netns::{enter_split_netns, with_namespace};
use loadgen::os::is_root;
use loadgen::probe::netstat::read_tcp_ext;
use loadgen::probe::sockstat::read_sockstat;
use loadgen::probe::{Sample, Sampler, SamplerConfig, SlabSizes};
use socket2::{Domain, Socket, Type};

const SERVER_FIRST: u64 = 3;
const CLIENT_FIRST: u64 = 5;

/// A connection from `source` to `listener`.
fn connect_from(source: IpAddr, listener: &TcpListener) -> (TcpStream, TcpStream) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket
        .connect_timeout(
            &listener.local_addr().unwrap().into(),
            Duration::from_secs(2),
        )
        .unwrap();
    let (server, _) = listener.accept().unwrap();
    (socket.into(), server)
}

/// One connection closed first by the client or by the server; the other side closes only
/// after reading the FIN, so the close is never simultaneous and one TIME_WAIT results.
fn one_connection(source: IpAddr, listener: &TcpListener, client_first: bool) {
    let (mut client, mut server) = connect_from(source, listener);
    let mut byte = [0u8; 1];
    if client_first {
        drop(client);
        assert_eq!(server.read(&mut byte).unwrap(), 0);
    } else {
        drop(server);
        assert_eq!(client.read(&mut byte).unwrap(), 0);
    }
}

/// Samples until `done` holds or 3 s have passed; returns the last sample.
fn sample_until(sampler: &mut Sampler, done: impl Fn(&Sample) -> bool) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let sample = sampler.sample();
        if done(&sample) || Instant::now() > deadline {
            return sample;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn counts_each_side_in_its_own_namespace() {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    let started = Instant::now();
    std::thread::spawn(|| {
        // No delay: what is counted does not depend on it, and it works without sch_netem.
        let split = match enter_split_netns(Duration::ZERO).unwrap() {
            Ok(split) => split,
            Err(reason) if reason.contains("iproute2") => {
                println!("SKIPPED: {reason}");
                return;
            }
            Err(reason) => panic!("the split network failed: {reason}"),
        };
        let server_ns = Arc::new(split.server_ns.try_clone().unwrap());
        let listener = split
            .in_server_namespace(|| TcpListener::bind((split.server_address, 0)).unwrap())
            .unwrap();
        let port = listener.local_addr().unwrap().port();

        let mut config = SamplerConfig::new(Instant::now());
        config.server_port = Some(port);
        config.server_netns = Some(server_ns.clone());
        config.time_wait_max_core_share = f64::INFINITY; // every sample dumps
        config.slab = SlabSizes {
            tw_sock_tcp_bytes: 256,
            estimated: false,
            ..SlabSizes::fallback()
        };
        let mut sampler = Sampler::new(config.clone());
        let before = sampler.sample();
        let tw = before.time_wait.expect("TIME_WAIT counts");
        assert_eq!((tw.server_side, tw.client_side), (0, 0));
        let overflows_before = before.tcp_ext.expect("TcpExt").listen_overflows;
        assert!(before.loadgen_rss_bytes.is_some_and(|rss| rss > 1 << 20));

        let sources: Vec<IpAddr> = split
            .fast_sources
            .iter()
            .chain(&split.delayed_sources)
            .copied()
            .collect();
        for i in 0..SERVER_FIRST {
            one_connection(sources[i as usize], &listener, false);
        }
        for i in 0..CLIENT_FIRST {
            one_connection(sources[(SERVER_FIRST + i) as usize], &listener, true);
        }
        let after = sample_until(&mut sampler, |s| {
            s.time_wait
                .is_some_and(|t| (t.server_side, t.client_side) == (SERVER_FIRST, CLIENT_FIRST))
        });
        let tw = after.time_wait.unwrap();
        assert_eq!(
            (tw.server_side, tw.client_side),
            (SERVER_FIRST, CLIENT_FIRST),
            "{after:?}"
        );
        assert_eq!(
            (tw.server_side_bytes, tw.client_side_bytes),
            (SERVER_FIRST * 256, CLIENT_FIRST * 256)
        );
        // All begun after the sampler's start, in both namespaces: this point's own.
        assert_eq!(
            (
                tw.server_side_since_point_start,
                tw.client_side_since_point_start
            ),
            (SERVER_FIRST, CLIENT_FIRST)
        );
        // sockstat: each namespace holds its side's TIME_WAITs; the sample has both.
        let clients_only = read_sockstat().unwrap();
        let server_only = with_namespace(&server_ns, read_sockstat).unwrap().unwrap();
        assert_eq!(
            (server_only.tcp_tw, clients_only.tcp_tw),
            (SERVER_FIRST, CLIENT_FIRST)
        );
        let sockstat = after.sockstat.unwrap();
        assert_eq!(sockstat.tcp_tw, SERVER_FIRST + CLIENT_FIRST);
        // The listener is in the server's namespace, and counted.
        assert!(server_only.tcp_inuse >= 1 && sockstat.tcp_inuse >= server_only.tcp_inuse);

        // An accept queue of one, full: the next SYN is dropped in the server's namespace.
        let small = split
            .in_server_namespace(|| TcpListener::bind((split.server_address, 0)).unwrap())
            .unwrap();
        // listen() again on a listening socket only changes its backlog.
        socket2::SockRef::from(&small).listen(0).unwrap();
        let queued = TcpStream::connect(small.local_addr().unwrap()).unwrap();
        let dropped = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        dropped.set_nonblocking(true).unwrap();
        let _ = dropped.connect(&small.local_addr().unwrap().into()); // EINPROGRESS
        let overflowed = sample_until(&mut sampler, |s| {
            s.tcp_ext
                .is_some_and(|t| t.listen_overflows > overflows_before)
        });
        let overflows = overflowed.tcp_ext.unwrap().listen_overflows - overflows_before;
        assert!(overflows >= 1, "no listen overflow counted");
        assert_eq!(
            read_tcp_ext().unwrap().counters().listen_overflows,
            0,
            "the overflow belongs to the server's namespace, not the clients'"
        );

        // The sampler thread, started from the clients' namespace, counts the same; started
        // now, it finds them all begun before its point, and its window over.
        std::thread::sleep(Duration::from_millis(100));
        config.start = Instant::now();
        config.window_end = Some(config.start);
        let handle = Sampler::start(config);
        std::thread::sleep(Duration::from_millis(30));
        let report = handle.stop_report();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let last = report.samples.last().unwrap();
        let tw = last.time_wait.unwrap();
        assert_eq!(
            (tw.server_side, tw.client_side),
            (SERVER_FIRST, CLIENT_FIRST)
        );
        assert_eq!(
            (
                tw.server_side_since_point_start,
                tw.client_side_since_point_start,
                tw.server_side_since_window_end,
                tw.client_side_since_window_end
            ),
            (0, 0, 0, 0),
            "{tw:?}"
        );
        assert!(last.tcp_ext.unwrap().listen_overflows > overflows_before);
        assert!(last.loadgen_rss_bytes.is_some());
        drop((queued, dropped));
    })
    .join()
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}
