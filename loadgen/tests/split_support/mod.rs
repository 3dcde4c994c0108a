//! Shared by the split-namespace tests: an echo server in the server's namespace, and
//! connections from a chosen client source with their connect and echo times.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use loadgen::netns::SplitNetwork;
use socket2::{Domain, Socket, Type};

/// An echo server on 198.18.0.1 in the server's namespace: every connection gets its bytes
/// back until it closes.
pub fn echo_server(split: &SplitNetwork) -> SocketAddr {
    let listener = split
        .in_server_namespace(|| TcpListener::bind((split.server_address, 0)).unwrap())
        .unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                stream.set_nodelay(true).unwrap();
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A connection to `server` from `source` (bound first), and how long the connect took.
pub fn connect_from(source: IpAddr, server: SocketAddr) -> (TcpStream, Duration) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    let started = Instant::now();
    socket
        .connect_timeout(&server.into(), Duration::from_secs(3))
        .unwrap();
    let connect = started.elapsed();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(stream.local_addr().unwrap().ip(), source);
    (stream, connect)
}

/// From `source`: how long the connect took and how long a one-byte echo took.
pub fn round_trip(source: IpAddr, server: SocketAddr) -> (Duration, Duration) {
    let (mut stream, connect) = connect_from(source, server);
    stream.set_nodelay(true).unwrap();
    let started = Instant::now();
    stream.write_all(b"x").unwrap();
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).unwrap();
    let echo = started.elapsed();
    assert_eq!(&byte, b"x");
    (connect, echo)
}
