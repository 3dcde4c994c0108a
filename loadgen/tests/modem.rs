//! Slow-line (modem) clients against small instrumented servers: a 100 KiB download takes the
//! time the line rate predicts, the server's send queue stays full while it does (flow control
//! is real), the upload is paced, and page views have the shape asked for.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use loadgen::engine::modem::RttMode;
use loadgen::engine::workload::{UrlEntry, Workload};
use loadgen::engine::{run_load_point, PointOutcome, PointPlan};
use loadgen::scenario::{Population, Scenario};

const BODY: usize = 100 * 1024;

/// A modem population parsed from scenario text, with `extra` keys added.
fn modem_population(extra: &str) -> Population {
    let text =
        format!("[[clients]]\nname = \"modem\"\nkind = \"modem\"\nramp_up = \"0s\"\n{extra}\n");
    let scenario = Scenario::parse(&text, std::path::Path::new("modem-test.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    scenario.clients.into_iter().next().expect("one population")
}

fn run(
    population: Population,
    target: SocketAddr,
    path: &str,
    body: usize,
    secs: u64,
) -> PointOutcome {
    let workload = Workload::urls(vec![UrlEntry {
        path: path.into(),
        weight: 1.0,
        expected_bytes: Some(body as u64),
    }]);
    let populations = vec![population];
    let plan = PointPlan {
        start: Instant::now() + Duration::from_millis(20),
        target,
        host_header: target.to_string(),
        populations: &populations,
        load_fraction: 1.0,
        shard: loadgen::engine::share::ShardSpec::WHOLE,
        workers: 1,
        cpus: Vec::new(),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(secs),
        interval: Duration::from_secs(1),
        request_timeout: Duration::from_secs(60),
        seed: 7,
        workload: &workload,
        sources: Vec::new(),
        population_sources: Vec::new(),
        rtt_mode: RttMode::Application,
    };
    run_load_point(&plan, &mut |_| None).expect("the load point runs")
}

/// Bytes in a socket's send queue not yet acknowledged by the peer (SIOCOUTQ).
fn send_queue(stream: &TcpStream) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one c_int through the pointer.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    assert_eq!(rc, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    queued as usize
}

/// The MSS the kernel uses on a connected socket (TCP_MAXSEG).
fn effective_mss(stream: &TcpStream) -> usize {
    let mut mss: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int and its length through the pointers.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            &mut mss as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
    mss as usize
}

/// What the one-download server saw.
struct DownloadSeen {
    /// The server side's segment size: the client's announced MSS, less TCP options.
    server_mss: usize,
    request_bytes: usize,
    /// From accept() to the end of the request head.
    request_took: Duration,
    /// SIOCOUTQ samples every 50 ms from the first write until the client had it all.
    send_queue_samples: Vec<usize>,
}

/// Serves one HTTP/1.0 request with a 100 KiB body, watching its own send queue.
fn serve_one_download(listener: TcpListener) -> DownloadSeen {
    let (mut stream, _) = listener.accept().expect("accept");
    let accepted = Instant::now();
    let server_mss = effective_mss(&stream);
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("read the request");
        assert!(n > 0, "the client closed before its request was complete");
        request.extend_from_slice(&buf[..n]);
    }
    let request_took = accepted.elapsed();
    let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {BODY}\r\n\r\n");
    let mut reply = head.into_bytes();
    reply.extend(std::iter::repeat_n(b'x', BODY));
    stream.set_nonblocking(true).unwrap();
    let mut written = 0;
    let mut send_queue_samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        while written < reply.len() {
            match stream.write(&reply[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        let queued = send_queue(&stream);
        send_queue_samples.push(queued);
        if (written == reply.len() && queued == 0) || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    DownloadSeen {
        server_mss,
        request_bytes: request.len(),
        request_took,
        send_queue_samples,
    }
}

#[test]
fn a_100_kib_download_takes_the_time_the_line_rate_predicts_and_fills_the_server_send_queue() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let server = thread::spawn(move || serve_one_download(listener));
    // One user, one page, no images; defaults otherwise: 53.3k down, 33.6k up, 150 ms.
    let population = modem_population(
        "clients = 1\nkeep_alive = false\nimages_per_page = { distribution = \"constant\", count = 0 }\nthink = { distribution = \"constant\", time = \"10m\" }",
    );
    let Population::Modem(spec) = &population else {
        unreachable!()
    };
    let payload_rate = spec.mean_payload_bytes_per_s();
    let upstream_rate = spec.upstream_bps / 8.0 * spec.payload_share();
    let rtt = spec.rtt.as_secs_f64();
    let outcome = run(population, target, "/100k", BODY, 20);
    let seen = server.join().expect("the server thread");

    let recorder = &outcome.recorders[0];
    let all = recorder.all_classes();
    // The SYN announced 536: the server sends no larger segments (timestamps take 12 of them).
    assert!(
        (500..=536).contains(&seen.server_mss),
        "server-side MSS {} on loopback (MTU 65536)",
        seen.server_mss
    );
    assert_eq!(
        all.ops, 1,
        "one download completed; errors {:?}",
        recorder.errors
    );
    let took_s = all.total_us.max() as f64 / 1e6;
    // A round trip for the handshake, the upload, a round trip for request and first byte,
    // then head and body at the line's payload rate.
    let head_bytes = format!("HTTP/1.0 200 OK\r\nContent-Length: {BODY}\r\n\r\n").len();
    let upload_s = seen.request_bytes as f64 / upstream_rate;
    let predicted_s = 2.0 * rtt + upload_s + (BODY + head_bytes) as f64 / payload_rate;
    assert!(
        (took_s / predicted_s - 1.0).abs() < 0.10,
        "took {took_s:.2} s, the line predicts {predicted_s:.2} s"
    );

    // Flow control is real: while the client downloaded, the server's send queue held data
    // beyond the client's 8 KiB window, nearly all the time.
    let during: Vec<usize> = seen.send_queue_samples[..seen.send_queue_samples.len() - 1].to_vec();
    let non_empty = during.iter().filter(|&&q| q > 0).count() as f64 / during.len() as f64;
    assert!(
        during.len() as f64 > 0.8 * took_s / 0.05,
        "{} samples over {took_s:.1} s",
        during.len()
    );
    assert!(
        non_empty > 0.95,
        "send queue non-empty in {non_empty:.2} of samples"
    );
    assert!(
        during.iter().max().copied().unwrap_or(0) > 8192,
        "the server's send queue never held more than the window: {:?}",
        &during[..during.len().min(20)]
    );

    // The upload is paced at 33.6k: the server waits for the request's last byte.
    let took = seen.request_took.as_secs_f64();
    assert!(
        took >= upload_s * 0.95 && took < upload_s + 0.1,
        "the server had the {} byte request after {:.0} ms; the upstream takes {:.0} ms",
        seen.request_bytes,
        took * 1000.0,
        upload_s * 1000.0
    );

    // The per-reply line figures agree: the line set the pace.
    let line = recorder.line.as_ref().expect("line figures");
    let slowdown = line.slowdown_milli.max() as f64 / 1000.0;
    assert!((0.95..1.10).contains(&slowdown), "slowdown x{slowdown:.2}");
    let achieved = line.achieved_bytes_per_s.max() as f64;
    assert!(
        (achieved / payload_rate - 1.0).abs() < 0.10,
        "achieved {achieved:.0} B/s of {payload_rate:.0}"
    );
}

/// A keep-alive server for many connections: one thread each, small bodies, counting
/// requests and connections.
fn serve_small_pages(listener: TcpListener, stop: Arc<AtomicBool>, requests: Arc<AtomicU64>) {
    listener.set_nonblocking(true).unwrap();
    let mut threads = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let requests = Arc::clone(&requests);
                stream.set_nonblocking(false).unwrap();
                threads.push(thread::spawn(move || {
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            requests.fetch_add(1, Ordering::Relaxed);
                            let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n";
                            if stream.write_all(reply).is_err()
                                || stream.write_all(&[b'y'; 600]).is_err()
                            {
                                return;
                            }
                        }
                    }
                }));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    drop(threads);
}

#[test]
fn page_views_fetch_the_page_then_its_images_and_linger_before_closing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let server = {
        let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
        thread::spawn(move || serve_small_pages(listener, stop, requests))
    };
    // 20 users, 3 images per page, 2 connections each, 300 ms think, 200 ms linger: every
    // connection closes by lingering between pages (think > linger).
    let population = modem_population(
        "clients = 20\nimages_per_page = { distribution = \"constant\", count = 3 }\nconnections_per_client = 2\nthink = { distribution = \"constant\", time = \"300ms\" }\nlinger = { distribution = \"constant\", time = \"200ms\" }\ndownstream = \"1M\"\nrtt = \"20ms\"",
    );
    let outcome = run(population, target, "/page", 600, 4);
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let recorder = &outcome.recorders[0];
    let line = recorder.line.as_ref().expect("line figures");
    let ops = recorder.all_classes().ops;
    assert_eq!(
        recorder.errors.iter().sum::<u64>(),
        0,
        "{:?}",
        recorder.errors
    );
    assert!(line.pages_completed >= 20, "{} pages", line.pages_completed);
    // Four requests per page view: pages completed x 4 <= ops <= pages started x 4.
    assert!(
        ops >= line.pages_completed * 4 && ops <= line.pages_started * 4,
        "{ops} requests for {} started / {} completed pages",
        line.pages_started,
        line.pages_completed
    );
    assert!(
        line.lingering_closes >= line.pages_completed,
        "{} lingering closes for {} pages (every page's connections linger, then close)",
        line.lingering_closes,
        line.pages_completed
    );
    // Never more than 2 connections per user.
    assert!(
        recorder.peak_open_connections <= 40,
        "{} connections open at once for 20 users x 2",
        recorder.peak_open_connections
    );
    assert!(requests.load(Ordering::Relaxed) >= ops);
}
