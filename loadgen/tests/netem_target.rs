//! The server under test in the split namespaces: started from inside the server's namespace
//! on 198.18.0.1 (the built-in server, and a command through `{host}`), reached from the
//! clients' namespace, and a command that listens on 127.0.0.1 only is reported, not run
//! against.
//!
//! Needs root; without it each test says `SKIPPED: needs root`. Command tests use
//! `python3 -m http.server`.

mod target_support;
use target_support::{dirs, options_on, python3_missing, PAGE};

mod split_support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use loadgen::netns::{current_namespace, enter_split_netns, SplitNetwork};
use loadgen::os::is_root;
use loadgen::scenario::ServerSpec;
use loadgen::target::{ServerHandle, TargetError, TargetOptions};
use socket2::{Domain, Socket, Type};

/// One HTTP/1.0 GET from `source`, the whole reply as text.
fn get_from(source: IpAddr, addr: SocketAddr, path: &str) -> String {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Runs `test` on a thread of its own in the clients' namespace of a fresh undelayed split
/// network, unless not root or iproute2 is missing.
fn in_split_network(test: impl FnOnce(SplitNetwork) + Send + 'static) {
    if !is_root() {
        println!("SKIPPED: needs root");
        return;
    }
    std::thread::spawn(|| match enter_split_netns(Duration::ZERO).unwrap() {
        Ok(split) => test(split),
        Err(reason) if reason.contains("iproute2") => println!("SKIPPED: {reason}"),
        Err(reason) => panic!("the split network failed: {reason}"),
    })
    .join()
    .unwrap();
}

fn start_in_server_namespace(
    split: &SplitNetwork,
    spec: &ServerSpec,
    options: &TargetOptions,
) -> Result<ServerHandle, TargetError> {
    let before = current_namespace().unwrap().metadata().unwrap();
    let started = split
        .in_server_namespace(|| ServerHandle::start(spec, options))
        .unwrap();
    let after = current_namespace().unwrap().metadata().unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(before.ino(), after.ino(), "back in the clients' namespace");
    started
}

#[test]
fn builtin_server_listens_in_the_server_namespace() {
    in_split_network(|split| {
        let dirs = dirs();
        let spec = ServerSpec::Builtin {
            args: Vec::new(),
            cpu: None,
            binary: None,
        };
        let server = start_in_server_namespace(
            &split,
            &spec,
            &options_on(&dirs, split.server_address.into()),
        )
        .unwrap();
        assert_eq!(server.addr().ip().to_string(), "198.18.0.1");
        assert!(
            server.command_line().contains("--listen 198.18.0.1:0"),
            "{}",
            server.command_line()
        );
        for source in [split.delayed_sources[3], split.fast_sources[3]] {
            assert!(get_from(source, server.addr(), "/index.html").ends_with(PAGE));
        }
        let outcome = server.stop(Duration::from_secs(5));
        assert_eq!(outcome.exit, "exit status: 0", "{outcome:?}");
        assert_eq!(outcome.stats.expect("stats")["requests_total"], 2);
    });
}

#[test]
fn command_server_listens_on_host() {
    if python3_missing() {
        return;
    }
    in_split_network(|split| {
        let dirs = dirs();
        let spec = ServerSpec::Command {
            command: "exec python3 -m http.server {port} --bind {host} --directory {root}".into(),
            ready_url: "http://{host}:{port}/".into(),
            cpu: None,
        };
        let server = start_in_server_namespace(
            &split,
            &spec,
            &options_on(&dirs, split.server_address.into()),
        )
        .unwrap();
        assert_eq!(server.addr().ip().to_string(), "198.18.0.1");
        assert!(
            server.command_line().contains("--bind 198.18.0.1"),
            "{}",
            server.command_line()
        );
        assert!(get_from(split.fast_sources[0], server.addr(), "/index.html").ends_with(PAGE));
        server.stop(Duration::from_secs(5));
    });
}

#[test]
fn command_server_on_loopback_only_is_reported() {
    if python3_missing() {
        return;
    }
    in_split_network(|split| {
        let dirs = dirs();
        let spec = ServerSpec::Command {
            command: "exec python3 -m http.server {port} --bind 127.0.0.1 --directory {root}"
                .into(),
            ready_url: "http://127.0.0.1:{port}/".into(),
            cpu: None,
        };
        let error = start_in_server_namespace(
            &split,
            &spec,
            &options_on(&dirs, split.server_address.into()),
        )
        .expect_err("the clients cannot reach a server on 127.0.0.1");
        let message = error.to_string();
        assert!(message.contains("198.18.0.1:"), "{message}");
        assert!(message.contains("{host}"), "{message}");
    });
}

#[test]
fn starting_from_the_clients_namespace_is_a_clear_error() {
    in_split_network(|split| {
        let dirs = dirs();
        let spec = ServerSpec::Command {
            command: "exec sleep 30".into(),
            ready_url: "http://{host}:{port}/".into(),
            cpu: None,
        };
        // Not inside the server's namespace: 198.18.0.1 is not an address here.
        let error = ServerHandle::start(&spec, &options_on(&dirs, split.server_address.into()))
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("198.18.0.1"), "{message}");
        assert!(message.contains("namespace"), "{message}");
    });
}
