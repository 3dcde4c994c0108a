//! Network interface requests of the calling thread's namespace: an interface's flags
//! (`SIOCGIFFLAGS`, `SIOCSIFFLAGS`) and a TUN descriptor's device (`TUNSETIFF`).
//!
//! All three take a `struct ifreq`, and neither std, rustix nor socket2 wraps them, so this
//! file holds the one `unsafe` call behind them ([`ifreq_ioctl`]). Everything else about
//! namespaces and devices (addresses, routes, qdiscs) goes through iproute2 in `split`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::ioctl::{Opcode, Updater};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::NetnsError;

/// The interface flags as the kernel reports them: `IFF_UP`, `IFF_RUNNING`, ... (`libc`).
pub(crate) type InterfaceFlags = libc::c_int;

/// `struct ifreq` with the union's `ifr_flags` member: the name, the flags, and the rest of
/// the union, zeroed, so the kernel reads and writes only memory that is ours.
#[repr(C)]
struct InterfaceRequest {
    name: [u8; libc::IFNAMSIZ],
    flags: u16,
    rest_of_union: [u8; IFREQ_UNION_BYTES - 2],
}

const IFREQ_UNION_BYTES: usize = std::mem::size_of::<libc::ifreq>() - libc::IFNAMSIZ;
const _: () =
    assert!(std::mem::size_of::<InterfaceRequest>() == std::mem::size_of::<libc::ifreq>());

impl InterfaceRequest {
    /// A request naming `name` (NUL-terminated, so shorter than `IFNAMSIZ`), flags 0.
    fn named(name: &str) -> io::Result<InterfaceRequest> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name `{name}` (1 to 15 bytes)"),
            ));
        }
        let mut request = InterfaceRequest {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            rest_of_union: [0; IFREQ_UNION_BYTES - 2],
        };
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(request)
    }
}

/// Issues the `ifreq` request `REQUEST` on `fd`; the kernel may write its answer into
/// `request`.
fn ifreq_ioctl<const REQUEST: Opcode>(
    fd: BorrowedFd<'_>,
    request: &mut InterfaceRequest,
) -> io::Result<()> {
    // SAFETY: every REQUEST of this file (SIOCGIFFLAGS, SIOCSIFFLAGS, TUNSETIFF) takes a
    // pointer to a `struct ifreq`, and `InterfaceRequest` is one: the same size, the name at
    // offset 0 and the 16-bit flags at the start of the union, as the kernel reads them.
    unsafe { rustix::ioctl::ioctl(fd, Updater::<REQUEST, InterfaceRequest>::new(request)) }
        .map_err(io::Error::from)
}

const SIOCGIFFLAGS: Opcode = libc::SIOCGIFFLAGS as Opcode;
const SIOCSIFFLAGS: Opcode = libc::SIOCSIFFLAGS as Opcode;
const TUNSETIFF: Opcode = libc::TUNSETIFF as Opcode;

/// A throwaway datagram socket: interface ioctls need a socket of the namespace, any socket.
fn control_socket() -> io::Result<OwnedFd> {
    rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// The flags of the interface `name` (`SIOCGIFFLAGS`).
pub(crate) fn interface_flags(name: &str) -> io::Result<InterfaceFlags> {
    let socket = control_socket()?;
    let mut request = InterfaceRequest::named(name)?;
    ifreq_ioctl::<SIOCGIFFLAGS>(socket.as_fd(), &mut request)?;
    Ok(InterfaceFlags::from(request.flags))
}

/// Sets the flags of the interface `name` (`SIOCSIFFLAGS`).
fn set_interface_flags(name: &str, flags: InterfaceFlags) -> io::Result<()> {
    let socket = control_socket()?;
    let mut request = InterfaceRequest::named(name)?;
    // The kernel's flags are 16 bits wide (`short ifr_flags`); the extended ones are not set
    // this way.
    request.flags = flags as u16;
    ifreq_ioctl::<SIOCSIFFLAGS>(socket.as_fd(), &mut request)
}

/// Brings `lo` up in the calling thread's namespace (a new namespace starts with it down).
pub(crate) fn bring_loopback_up() -> Result<(), NetnsError> {
    let error = |action: &'static str| {
        move |error| NetnsError::Interface {
            action,
            interface: "lo".into(),
            error,
        }
    };
    let flags = interface_flags("lo").map_err(error("reading the flags of"))?;
    set_interface_flags("lo", flags | libc::IFF_UP | libc::IFF_RUNNING)
        .map_err(error("bringing up"))
}

/// Attaches the open `/dev/net/tun` descriptor `fd` to a new TUN device `name` without
/// packet information (`IFF_TUN | IFF_NO_PI`, `TUNSETIFF`).
pub(crate) fn attach_tun(fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let mut request = InterfaceRequest::named(name)?;
    request.flags = (libc::IFF_TUN | libc::IFF_NO_PI) as u16;
    ifreq_ioctl::<TUNSETIFF>(fd, &mut request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_fit_an_ifreq() {
        assert!(InterfaceRequest::named("abt-c").is_ok());
        assert!(InterfaceRequest::named("").is_err());
        let error = InterfaceRequest::named("a-name-of-16-byt").err().unwrap();
        assert!(error.to_string().contains("a-name-of-16-byt"), "{error}");
        assert_eq!(
            interface_flags("no-such-if0").unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }

    #[test]
    fn loopback_flags_are_read() {
        // Every namespace has `lo`; up or not, it is a loopback device.
        let flags = interface_flags("lo").unwrap();
        assert_ne!(flags & libc::IFF_LOOPBACK, 0, "{flags:#x}");
    }
}
