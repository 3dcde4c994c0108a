//! The split mode, for scenarios with slow-line ("56k modem") clients: two namespaces, the
//! SERVER's and the CLIENTS', each set up like the private one, joined by a veth pair (`abv-s`
//! = 198.18.0.1/16 in the server's, `abv-c` = 198.18.0.2/16 in the clients'). The clients'
//! side also carries 64 source addresses: 198.18.1.1-32 (*delayed*) and 198.18.2.1-32
//! (*fast*). With a non-zero one-way delay, netem on each end of the veth delays the packets of
//! the delayed sources only (`prio` root qdisc, a `u32` filter on the source address on `abv-c`
//! and on the destination address on `abv-s`, netem with a 1,000,000-packet limit in the
//! filtered band), so a modem client sees a real round-trip time of twice the delay in the
//! kernel's own TCP (handshake, slow start, retransmission timers) while the fast clients and
//! the server's answers to them are not delayed at all. The calling thread ends up in the
//! clients' namespace; the server must be started from inside the server's
//! ([`SplitNetwork::in_server_namespace`]), since a child process inherits the namespace of the
//! thread that spawns it. The sampler gets the server's namespace handle
//! (`SamplerConfig::server_netns`) and counts on both sides.
//!
//! The split mode needs root, iproute2 (`ip`, `tc`) and, for a non-zero delay, the kernel's
//! `sch_prio`, `cls_u32` and `sch_netem`. When any is missing it says why (`Ok(Err(reason))`),
//! leaves the calling thread where it was, and the caller falls back to the private namespace
//! with application-level delay and records the reason. The reason is text because that is
//! what the caller does with it; inside this file it is a typed `Unavailable`, which names the
//! command that failed and what it printed.
//!
//! Where the kernel has no netem, [`enter_split_netns_with`] builds the delayed path in user
//! space instead ([`DelayMechanism::TunRelay`]; also on request, [`DelayPreference`]). The veth
//! stays as it is, without any qdisc, for the fast sources and the namespaces' own addresses.
//! Each namespace gets a TUN device (`abt-c` in the clients', `abt-s` in the server's, created
//! by the building thread while inside that namespace, `IFF_TUN | IFF_NO_PI`, non-blocking)
//! and routes that send the delayed sources' packets through it: in the clients' namespace a
//! policy rule `from 198.18.1.0/24 lookup 100` with `198.18.0.1/32 dev abt-c` in table 100, in
//! the server's `198.18.1.0/24 dev abt-s` (more specific than the veth's /16). The relay thread
//! of [`delay_line`](super::delay_line) holds every packet read from one device for the one-way
//! delay and writes it to the other ([`SplitNetwork::delay_line`]); the kernel on each side
//! sees a plain point-to-point link, so TCP gets the same real round trip as with netem. The
//! devices go away when the relay stops (it owns their only descriptors). `rp_filter` is set
//! to 0 where it is not already (a strict check would need the policy rule to match), and IPv6
//! is off on the TUN devices (no router solicitations on the line).
//!
//! Not here: one private namespace and the sysctls every run namespace gets (`private`), the
//! relay itself (`delay_line`), the interface ioctls (`interface`).

use std::fs::File;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reports::model::{DelayPath, Isolation, IsolationMode};

use super::delay_line::{
    open_tun, DelayLine, DelayLineConfig, DelayLineEnd, DelayLineError, DelayLineHandle,
    NetDevCounter, DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_PACKETS, THREAD_NAME,
};
use super::interface::interface_flags;
use super::private::{new_namespace, set_child_ehash, set_sysctl, PRIVATE_EHASH_ENTRIES};
use super::NetnsError;
use super::{current_namespace, enter_namespace, unshare_network_namespace, with_namespace};

/// The server's address in the split mode (on `abv-s`).
pub const SPLIT_SERVER_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The clients' namespace's own address on `abv-c` (the default source, never delayed).
pub const SPLIT_CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Source addresses of each kind (delayed, fast) on `abv-c`.
pub const SPLIT_SOURCES_PER_KIND: u8 = 32;
/// The veth end in the server's namespace.
pub const SERVER_VETH: &str = "abv-s";
/// The veth end in the clients' namespace.
pub const CLIENT_VETH: &str = "abv-c";
/// netem's queue limit in packets. The default of 1,000 drops packets once a few thousand slow
/// connections each have a packet or two in flight; a drop there is a loss no modem had.
pub const NETEM_LIMIT_PACKETS: u32 = 1_000_000;
/// The TUN device of the user-space delay line in the clients' namespace.
pub const CLIENT_TUN: &str = "abt-c";
/// The TUN device of the user-space delay line in the server's namespace.
pub const SERVER_TUN: &str = "abt-s";
/// The clients' namespace's routing table for the delayed sources (with the delay line).
pub const DELAY_LINE_TABLE: u32 = 100;
/// Queue length of the TUN devices: packets the kernel holds for the relay before dropping
/// (the default 500 is a few milliseconds of a busy line; a relay thread that shares its CPU
/// may be away longer).
pub const TUN_TXQUEUELEN: u32 = 10_000;
/// The environment variable that can override [`DelayPreference::Auto`]: `auto`, `netem` or
/// `tun`.
pub const DELAY_LINE_ENV: &str = "LOADGEN_DELAY_LINE";
/// Prefix of the delayed sources (what the `u32` filters match).
const DELAYED_PREFIX: &str = "198.18.1.0/24";
/// Prefix of the fast sources.
const FAST_PREFIX: &str = "198.18.2.0/24";

/// What delays the delayed sources' packets in the split mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayMechanism {
    /// `tc netem` on both ends of the veth (the kernel's `sch_netem`).
    Netem,
    /// The user-space relay between the TUN devices `abt-c` and `abt-s`.
    TunRelay,
}

/// Which delay mechanism [`enter_split_netns_with`] should build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DelayPreference {
    /// netem where the kernel has it, else the user-space delay line. The environment variable
    /// [`DELAY_LINE_ENV`] (`netem`, `tun`, `auto`) turns it into one of the others.
    #[default]
    Auto,
    /// netem or nothing (`Ok(Err(reason))` without it): what [`enter_split_netns`] builds.
    Netem,
    /// The user-space delay line even where the kernel has netem.
    TunRelay,
}

/// A value of [`DELAY_LINE_ENV`] that names no [`DelayPreference`].
#[derive(Debug, thiserror::Error)]
#[error("{DELAY_LINE_ENV}={value}: expected `auto`, `netem` or `tun`")]
pub struct BadDelayPreference {
    /// The variable's value as set.
    pub value: String,
}

impl DelayPreference {
    /// `auto`, `netem` or `tun` (also `tun-relay`, `relay`, `user-space`).
    pub fn parse(text: &str) -> Option<DelayPreference> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(DelayPreference::Auto),
            "netem" => Some(DelayPreference::Netem),
            "tun" | "tun-relay" | "relay" | "user-space" => Some(DelayPreference::TunRelay),
            _ => None,
        }
    }

    /// `Auto` as [`DELAY_LINE_ENV`] may override it; the others unchanged.
    pub fn resolve(self) -> Result<DelayPreference, BadDelayPreference> {
        if self != DelayPreference::Auto {
            return Ok(self);
        }
        match std::env::var(DELAY_LINE_ENV) {
            Ok(value) => DelayPreference::parse(&value).ok_or(BadDelayPreference { value }),
            Err(_) => Ok(DelayPreference::Auto),
        }
    }
}

/// The two namespaces of the split mode, as [`enter_split_netns`] built them. Dropping it
/// closes the handles (and stops the delay line, if any); the namespaces live on while a
/// thread or process is inside them.
#[derive(Debug)]
pub struct SplitNetwork {
    /// Mode `PrivateNetns`, the sysctls of both namespaces, and `delay_path` with the `ip`
    /// and `tc` commands that built the path.
    pub isolation: Isolation,
    /// The server's namespace (an nsfs handle for [`enter_namespace`]).
    pub server_ns: File,
    /// The clients' namespace, where the calling thread is on return.
    pub client_ns: File,
    /// Where the server listens: 198.18.0.1.
    pub server_address: Ipv4Addr,
    /// 198.18.2.1 ..= 198.18.2.32: client sources whose packets are not delayed.
    pub fast_sources: Vec<IpAddr>,
    /// 198.18.1.1 ..= 198.18.1.32: client sources whose packets are delayed each way.
    pub delayed_sources: Vec<IpAddr>,
    /// What delays them; `None` with a zero delay.
    pub delay_mechanism: Option<DelayMechanism>,
    /// With [`DelayMechanism::TunRelay`]: why not netem (the kernel's refusal, or that the
    /// relay was asked for).
    pub why_not_netem: Option<String>,
    /// With [`DelayMechanism::TunRelay`]: the relay. It runs until this is dropped or
    /// stopped (`split.delay_line.take().map(|line| line.stop())` returns its counts); the
    /// delayed path is dead without it.
    pub delay_line: Option<DelayLineHandle>,
}

impl SplitNetwork {
    /// Runs `f` with the calling thread in the server's namespace, then moves it back to the
    /// namespace it was in. Start the server (and bind anything that must live on the server's
    /// side) inside `f`: children and sockets made there belong to the server's namespace.
    pub fn in_server_namespace<T>(&self, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
        with_namespace(&self.server_ns, f)
    }

    fn note_why_not_netem(&mut self, reason: String) {
        if let Some(path) = &mut self.isolation.delay_path {
            let at = path.commands.len().min(1);
            path.commands
                .insert(at, format!("netem not used: {reason}"));
        }
        self.why_not_netem = Some(reason);
    }
}

/// Why the split namespaces could not be built, or one of the two delay mechanisms not set up.
#[derive(Debug, thiserror::Error)]
enum Unavailable {
    #[error("not root: the split namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN")]
    NotRoot,
    #[error("iproute2 is not installed (apt-get install iproute2): no `{program}` found")]
    NoIproute2 { program: &'static str },
    #[error(transparent)]
    Preference(BadDelayPreference),
    #[error("unshare(CLONE_NEWNET): {error}")]
    Unshare { error: io::Error },
    #[error("{action}: {error}")]
    Namespace {
        action: &'static str,
        error: NetnsError,
    },
    #[error("`{command}`: {failure}")]
    Command {
        command: String,
        failure: CommandFailure,
    },
    #[error("`ip -batch -` ({lines} commands): {failure}")]
    Batch {
        lines: usize,
        failure: CommandFailure,
    },
    /// A `tc` command that needs `module` failed, after `modprobe` if it was tried.
    #[error(
        "{} {module}: {failure}{}",
        if *.missing { "the kernel has no" } else { "cannot set up" },
        .modprobe.as_ref().map(|outcome| format!("; {outcome}")).unwrap_or_default()
    )]
    KernelModule {
        module: &'static str,
        /// The kernel does not know the qdisc or filter (rather than refusing its settings).
        missing: bool,
        failure: Box<Unavailable>,
        /// What `modprobe` said, when this command made it run.
        modprobe: Option<String>,
    },
    #[error("{veth} had no carrier 2 s after it was set up", veth = CLIENT_VETH)]
    NoCarrier,
    #[error("reading the flags of {veth}: {error}", veth = CLIENT_VETH)]
    Carrier { error: io::Error },
    #[error("creating the TUN device {device}: {error}")]
    Tun {
        device: &'static str,
        error: io::Error,
    },
    #[error("opening /proc/thread-self/net/dev: {error}")]
    DropCounter { error: io::Error },
    #[error("starting the delay line's thread: {error}")]
    DelayLine { error: DelayLineError },
    #[error("{netem}; the user-space delay line failed too: {relay}")]
    NeitherDelay {
        netem: Box<Unavailable>,
        relay: Box<Unavailable>,
    },
}

/// How a command run to its end failed.
#[derive(Debug, thiserror::Error)]
enum CommandFailure {
    #[error("cannot run it: {0}")]
    Spawn(io::Error),
    #[error("waiting for it: {0}")]
    Wait(io::Error),
    /// It ran and failed; `stderr` is what it printed there, trimmed.
    #[error(
        "{}",
        if .stderr.is_empty() { .status.to_string() }
        else { format!("{} ({})", .stderr.replace('\n', " / "), .status) }
    )]
    Exit { status: ExitStatus, stderr: String },
}

/// Builds the split mode's two namespaces and the veth path between them (see the module
/// documentation) and leaves the calling thread in the CLIENTS' namespace.
///
/// `Ok(Err(reason))`: it could not be built (not root, iproute2 missing, `sch_netem` not
/// available, ...); the calling thread is back in the namespace it was in and nothing is left
/// behind. `Err`: the thread could not be moved back after a failure (or `/proc` is not
/// usable); it may be in a half-built namespace, and the run should stop.
///
/// A zero `one_way_delay` builds the same namespaces and addresses without any qdisc.
///
/// The delay is netem's or nothing: this is [`enter_split_netns_with`] with
/// [`DelayPreference::Netem`].
pub fn enter_split_netns(
    one_way_delay: Duration,
) -> Result<Result<SplitNetwork, String>, NetnsError> {
    enter_split_netns_with(one_way_delay, DelayPreference::Netem, &[])
}

/// [`enter_split_netns`] with a choice of delay mechanism: `prefer` (see [`DelayPreference`];
/// `Auto` falls back to the user-space delay line when netem cannot be set up, and reads
/// [`DELAY_LINE_ENV`]). `relay_cpus`: the CPUs the delay line's thread is pinned to (empty:
/// not pinned); unused with netem.
///
/// On success [`SplitNetwork::delay_mechanism`] says what was built, and for the delay line
/// `isolation.delay_path.commands` starts with a line describing it (`user-space delay line
/// on tun devices abt-c <-> abt-s, 50 ms each way ...`) and, when it stands in for netem, a
/// line `netem not used: REASON`. A zero delay builds no delay at all, whatever `prefer` says.
pub fn enter_split_netns_with(
    one_way_delay: Duration,
    prefer: DelayPreference,
    relay_cpus: &[usize],
) -> Result<Result<SplitNetwork, String>, NetnsError> {
    Ok(split_netns(one_way_delay, prefer, relay_cpus)?.map_err(|reason| reason.to_string()))
}

/// [`enter_split_netns_with`] with the reason still typed.
fn split_netns(
    one_way_delay: Duration,
    prefer: DelayPreference,
    relay_cpus: &[usize],
) -> Result<Result<SplitNetwork, Unavailable>, NetnsError> {
    if !crate::os::is_root() {
        return Ok(Err(Unavailable::NotRoot));
    }
    let tools = match Tools::find() {
        Ok(tools) => tools,
        Err(reason) => return Ok(Err(reason)),
    };
    let asked = prefer;
    let prefer = match prefer.resolve() {
        Ok(prefer) => prefer,
        Err(bad) => return Ok(Err(Unavailable::Preference(bad))),
    };
    let home = current_namespace()?;
    let first = match prefer {
        DelayPreference::TunRelay => DelayMechanism::TunRelay,
        DelayPreference::Auto | DelayPreference::Netem => DelayMechanism::Netem,
    };
    let why_asked = if asked == DelayPreference::TunRelay {
        "the user-space delay line was asked for".to_string()
    } else {
        format!("{DELAY_LINE_ENV} asks for the user-space delay line")
    };
    let netem_failure = match build_split(&tools, one_way_delay, first, relay_cpus) {
        Ok(mut split) => {
            if split.delay_mechanism == Some(DelayMechanism::TunRelay) {
                split.note_why_not_netem(why_asked);
            }
            return Ok(Ok(split));
        }
        Err(reason) => {
            // The half-built namespaces go away with their handles (dropped inside
            // build_split) once the thread has left them.
            enter_namespace(&home)?;
            reason
        }
    };
    if prefer != DelayPreference::Auto || one_way_delay.is_zero() {
        return Ok(Err(netem_failure));
    }
    // Start over: the veth of the failed try may carry half a qdisc tree.
    match build_split(&tools, one_way_delay, DelayMechanism::TunRelay, relay_cpus) {
        Ok(mut split) => {
            split.note_why_not_netem(netem_failure.to_string());
            Ok(Ok(split))
        }
        Err(relay_failure) => {
            enter_namespace(&home)?;
            Ok(Err(Unavailable::NeitherDelay {
                netem: Box::new(netem_failure),
                relay: Box::new(relay_failure),
            }))
        }
    }
}

/// Where `ip`, `tc` and (maybe) `modprobe` are.
struct Tools {
    ip: PathBuf,
    tc: PathBuf,
    modprobe: Option<PathBuf>,
}

impl Tools {
    fn find() -> Result<Tools, Unavailable> {
        let required = |program| find_program(program).ok_or(Unavailable::NoIproute2 { program });
        Ok(Tools {
            ip: required("ip")?,
            tc: required("tc")?,
            modprobe: find_program("modprobe"),
        })
    }
}

/// `name` in `$PATH`, or in the sbin directories a non-login root shell may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs commands (in the calling thread's namespace: a child inherits it) and keeps their
/// text for `DelayPath::commands`.
struct Runner<'a> {
    tools: &'a Tools,
    commands: Vec<String>,
    modprobe_tried: bool,
}

impl Runner<'_> {
    /// `ip ARGS` or `tc ARGS`; the error quotes the command and its stderr.
    fn run(&mut self, program: &str, args: &[&str]) -> Result<(), Unavailable> {
        let path = if program == "tc" {
            &self.tools.tc
        } else {
            &self.tools.ip
        };
        let command = format!("{program} {}", args.join(" "));
        self.commands.push(command.clone());
        run_quietly(Command::new(path).args(args), None)
            .map_err(|failure| Unavailable::Command { command, failure })
    }

    /// `ip -batch -` with `lines` on stdin (one process for many commands); each line is
    /// recorded as the `ip` command it stands for.
    fn ip_batch(&mut self, lines: &[String]) -> Result<(), Unavailable> {
        self.commands
            .extend(lines.iter().map(|line| format!("ip {line}")));
        let input = lines.join("\n") + "\n";
        run_quietly(
            Command::new(&self.tools.ip).args(["-batch", "-"]),
            Some(&input),
        )
        .map_err(|failure| Unavailable::Batch {
            lines: lines.len(),
            failure,
        })
    }

    /// A `tc` command that needs a kernel module (`module`): if it fails, tries `modprobe`
    /// once (for all the modules of the delay path) and the command again.
    fn tc_needing(&mut self, module: &'static str, args: &[&str]) -> Result<(), Unavailable> {
        let first = match self.run("tc", args) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let modprobe = if self.modprobe_tried {
            None
        } else {
            self.modprobe_tried = true;
            let loaded = self.modprobe(&["sch_prio", "cls_u32", "sch_netem"]);
            self.commands.pop(); // the failed try; the retry records it again
            match self.run("tc", args) {
                Ok(()) => return Ok(()),
                Err(_) => Some(loaded),
            }
        };
        let lower = first.to_string().to_lowercase();
        Err(Unavailable::KernelModule {
            module,
            missing: lower.contains("unknown") || lower.contains("not found"),
            failure: Box::new(first),
            modprobe,
        })
    }

    /// Loads `modules`; what happened to each, as one line.
    fn modprobe(&mut self, modules: &[&str]) -> String {
        let Some(modprobe) = &self.tools.modprobe else {
            return "modprobe is not installed (and this kernel may have no module support)".into();
        };
        let mut out = Vec::new();
        for module in modules {
            match run_quietly(Command::new(modprobe).arg(module), None) {
                Ok(()) => out.push(format!("modprobe {module}: loaded")),
                Err(e) => out.push(format!("modprobe {module}: {e}")),
            }
        }
        out.join("; ")
    }
}

/// Runs a command to its end with `stdin` (if any) fed in.
fn run_quietly(command: &mut Command, stdin: Option<&str>) -> Result<(), CommandFailure> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(CommandFailure::Spawn)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A command that fails early closes its stdin; its status says why.
        let _ = pipe.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(CommandFailure::Wait)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(CommandFailure::Exit {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

fn split_sources(third_octet: u8) -> Vec<IpAddr> {
    (1..=SPLIT_SOURCES_PER_KIND)
        .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, third_octet, i)))
        .collect()
}

/// The qdiscs and filter that delay the packets of `DELAYED_PREFIX` on `device`; `direction`
/// is `src` (clients' side: packets from the delayed sources) or `dst` (server's side: packets
/// to them).
fn add_delay(
    runner: &mut Runner,
    device: &str,
    direction: &str,
    delay_ms: &str,
) -> Result<(), Unavailable> {
    // netem first, alone, to name the module that matters most when it is missing; then the
    // real tree. The check is not recorded: it leaves nothing behind.
    let limit = NETEM_LIMIT_PACKETS.to_string();
    runner.tc_needing(
        "sch_netem",
        &[
            "qdisc", "add", "dev", device, "root", "netem", "delay", delay_ms, "limit", &limit,
        ],
    )?;
    runner.commands.pop();
    runner.run("tc", &["qdisc", "del", "dev", device, "root"])?;
    runner.commands.pop();
    let mut prio = vec![
        "qdisc", "add", "dev", device, "root", "handle", "1:", "prio", "bands", "2", "priomap",
    ];
    prio.extend(["0"; 16]);
    runner.tc_needing("sch_prio", &prio)?;
    runner.tc_needing(
        "sch_netem",
        &[
            "qdisc", "add", "dev", device, "parent", "1:2", "handle", "20:", "netem", "delay",
            delay_ms, "limit", &limit,
        ],
    )?;
    runner.tc_needing(
        "cls_u32",
        &[
            "filter",
            "add",
            "dev",
            device,
            "parent",
            "1:",
            "protocol",
            "ip",
            "prio",
            "1",
            "u32",
            "match",
            "ip",
            direction,
            DELAYED_PREFIX,
            "flowid",
            "1:2",
        ],
    )
}

/// One side of the delay line, in the calling thread's namespace: the TUN device `device`,
/// IPv6 off and `rp_filter` 0 on it, up, and the `ip` commands `routes`. `label` names the
/// namespace in `sysctls_set`.
fn delay_line_side(
    runner: &mut Runner,
    sysctls_set: &mut Vec<String>,
    label: &str,
    device: &'static str,
    routes: &[String],
) -> Result<DelayLineEnd, Unavailable> {
    let fd = open_tun(device).map_err(|error| Unavailable::Tun { device, error })?;
    runner.commands.push(format!(
        "open /dev/net/tun, TUNSETIFF {device} IFF_TUN|IFF_NO_PI (non-blocking) in the {label} namespace"
    ));
    let prefix = format!("{label} ns: ");
    // Before the link comes up, so it sends no router solicitation or MLD report.
    let ipv6 = format!("net/ipv6/conf/{device}/disable_ipv6");
    if Path::new("/proc/sys").join(&ipv6).exists() {
        set_sysctl(&prefix, &ipv6, "1", sysctls_set);
    }
    for conf in ["all", "default", device] {
        let name = format!("net/ipv4/conf/{conf}/rp_filter");
        let current = std::fs::read_to_string(Path::new("/proc/sys").join(&name));
        if current.ok().as_deref().map(str::trim) != Some("0") {
            set_sysctl(&prefix, &name, "0", sysctls_set);
        }
    }
    let mut lines = vec![format!(
        "link set {device} mtu 1500 txqueuelen {TUN_TXQUEUELEN} up"
    )];
    lines.extend_from_slice(routes);
    runner.ip_batch(&lines)?;
    let counter =
        NetDevCounter::open(device).map_err(|error| Unavailable::DropCounter { error })?;
    Ok(DelayLineEnd {
        fd,
        counter: Some(counter),
    })
}

/// The work of [`enter_split_netns_with`], with `mechanism` for a non-zero delay. On `Err` the
/// calling thread may be anywhere; the caller moves it back.
fn build_split(
    tools: &Tools,
    one_way_delay: Duration,
    mechanism: DelayMechanism,
    relay_cpus: &[usize],
) -> Result<SplitNetwork, Unavailable> {
    let namespace = |action| move |error| Unavailable::Namespace { action, error };
    let mut sysctls_set = Vec::new();
    // An intermediate namespace in which tcp_child_ehash_entries may be set without touching
    // the host's; both run namespaces are created from it and get tables of their own.
    unshare_network_namespace().map_err(|error| Unavailable::Unshare { error })?;
    let own_tables = set_child_ehash();
    let parent = current_namespace().map_err(namespace("opening the intermediate namespace"))?;
    let mut make_namespace = |label: &str| -> Result<File, Unavailable> {
        enter_namespace(&parent).map_err(namespace("entering the intermediate namespace"))?;
        unshare_network_namespace().map_err(|error| Unavailable::Unshare { error })?;
        let prefix = format!("{label} ns: ");
        if own_tables {
            sysctls_set.push(format!(
                "{prefix}own TCP hash table of {PRIVATE_EHASH_ENTRIES} entries"
            ));
        }
        new_namespace(&prefix, &mut sysctls_set)
            .map_err(namespace("setting up the new namespace"))?;
        current_namespace().map_err(namespace("opening the new namespace"))
    };
    let server_ns = make_namespace("server")?;
    let client_ns = make_namespace("client")?;
    drop(parent);

    // In the clients' namespace now. iproute2 takes a file for `netns`: our handle on the
    // server's namespace, through /proc/PID/fd (the descriptor itself is close-on-exec).
    let mut runner = Runner {
        tools,
        commands: Vec::new(),
        modprobe_tried: false,
    };
    let server_ns_path = format!("/proc/{}/fd/{}", std::process::id(), server_ns.as_raw_fd());
    runner.run(
        "ip",
        &[
            "link",
            "add",
            CLIENT_VETH,
            "type",
            "veth",
            "peer",
            "name",
            SERVER_VETH,
            "netns",
            &server_ns_path,
        ],
    )?;
    let fast_sources = split_sources(2);
    let delayed_sources = split_sources(1);
    let mut lines = vec![format!(
        "addr add {SPLIT_CLIENT_ADDRESS}/16 dev {CLIENT_VETH}"
    )];
    lines.extend(
        delayed_sources
            .iter()
            .chain(&fast_sources)
            .map(|ip| format!("addr add {ip}/16 dev {CLIENT_VETH}")),
    );
    lines.push(format!("link set {CLIENT_VETH} up"));
    runner.ip_batch(&lines)?;
    let delay_ms = format!("{}ms", one_way_delay.as_secs_f64() * 1000.0);
    let mechanism = (!one_way_delay.is_zero()).then_some(mechanism);
    let relay = mechanism == Some(DelayMechanism::TunRelay);
    let mut client_end = None;
    match mechanism {
        Some(DelayMechanism::Netem) => add_delay(&mut runner, CLIENT_VETH, "src", &delay_ms)?,
        Some(DelayMechanism::TunRelay) => {
            client_end = Some(delay_line_side(
                &mut runner,
                &mut sysctls_set,
                "client",
                CLIENT_TUN,
                &[
                    format!(
                        "rule add from {DELAYED_PREFIX} lookup {DELAY_LINE_TABLE} pref {DELAY_LINE_TABLE}"
                    ),
                    format!(
                        "route add {SPLIT_SERVER_ADDRESS}/32 dev {CLIENT_TUN} table {DELAY_LINE_TABLE}"
                    ),
                ],
            )?)
        }
        None => {}
    }

    enter_namespace(&server_ns).map_err(namespace("entering the server's namespace"))?;
    runner.ip_batch(&[
        format!("addr add {SPLIT_SERVER_ADDRESS}/16 dev {SERVER_VETH}"),
        format!("link set {SERVER_VETH} up"),
    ])?;
    let mut server_end = None;
    match mechanism {
        Some(DelayMechanism::Netem) => add_delay(&mut runner, SERVER_VETH, "dst", &delay_ms)?,
        Some(DelayMechanism::TunRelay) => {
            server_end = Some(delay_line_side(
                &mut runner,
                &mut sysctls_set,
                "server",
                SERVER_TUN,
                &[format!("route add {DELAYED_PREFIX} dev {SERVER_TUN}")],
            )?)
        }
        None => {}
    }
    enter_namespace(&client_ns).map_err(namespace("entering the clients' namespace"))?;
    wait_until_reachable()?;

    let delay_line = match (client_end, server_end) {
        (Some(client), Some(server)) => {
            let config = DelayLineConfig::new(one_way_delay, relay_cpus);
            let line = DelayLine::start(client, server, &config)
                .map_err(|error| Unavailable::DelayLine { error })?;
            let pinned = if relay_cpus.is_empty() {
                "not pinned".to_string()
            } else {
                format!("pinned to CPUs {relay_cpus:?}")
            };
            runner.commands.insert(
                0,
                format!(
                    "user-space delay line on tun devices {CLIENT_TUN} <-> {SERVER_TUN}, {} ms each way \
                     (relay thread `{THREAD_NAME}`, {pinned}, queues of at most {} packets or {} MiB each way)",
                    one_way_delay.as_secs_f64() * 1000.0,
                    DEFAULT_QUEUE_PACKETS,
                    DEFAULT_QUEUE_BYTES >> 20,
                ),
            );
            Some(line)
        }
        _ => None,
    };
    debug_assert_eq!(relay, delay_line.is_some());

    Ok(SplitNetwork {
        isolation: Isolation {
            mode: IsolationMode::PrivateNetns,
            reason: None,
            sysctls_set,
            delay_path: Some(DelayPath {
                server_address: SPLIT_SERVER_ADDRESS.to_string(),
                fast_sources: FAST_PREFIX.into(),
                delayed_sources: DELAYED_PREFIX.into(),
                one_way_delay_ms: one_way_delay.as_secs_f64() * 1000.0,
                delay_line: None,
                commands: runner.commands,
            }),
        },
        server_ns,
        client_ns,
        server_address: SPLIT_SERVER_ADDRESS,
        fast_sources,
        delayed_sources,
        delay_mechanism: mechanism,
        why_not_netem: None,
        delay_line,
    })
}

/// Waits until both ends of the veth report a carrier (the calling thread is in the clients'
/// namespace; `abv-c` runs only once its peer is up too), so the first connect does not race
/// the link coming up.
fn wait_until_reachable() -> Result<(), Unavailable> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match interface_flags(CLIENT_VETH) {
            Ok(flags) if flags & libc::IFF_RUNNING != 0 => return Ok(()),
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(_) => return Err(Unavailable::NoCarrier),
            Err(error) => return Err(Unavailable::Carrier { error }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_command_and_what_it_printed() {
        let failed = Unavailable::Command {
            command: "tc qdisc add dev abv-c root netem delay 50ms".into(),
            failure: CommandFailure::Exit {
                status: exit_status(2),
                stderr: "Error: Specified qdisc kind is unknown.\nmore".into(),
            },
        };
        let text = failed.to_string();
        assert!(
            text.starts_with("`tc qdisc add dev abv-c root netem delay 50ms`: Error: Specified"),
            "{text}"
        );
        assert!(text.contains("unknown. / more (exit status: 2)"), "{text}");
        let module = Unavailable::KernelModule {
            module: "sch_netem",
            missing: true,
            failure: Box::new(failed),
            modprobe: Some("modprobe sch_netem: not found".into()),
        };
        let text = module.to_string();
        assert!(
            text.starts_with("the kernel has no sch_netem: `tc "),
            "{text}"
        );
        assert!(text.ends_with("; modprobe sch_netem: not found"), "{text}");
        let quiet = CommandFailure::Exit {
            status: exit_status(1),
            stderr: String::new(),
        };
        assert_eq!(quiet.to_string(), "exit status: 1");
    }

    #[test]
    fn a_bad_preference_names_the_variable() {
        let bad = BadDelayPreference {
            value: "fast".into(),
        };
        assert_eq!(
            bad.to_string(),
            "LOADGEN_DELAY_LINE=fast: expected `auto`, `netem` or `tun`"
        );
        assert_eq!(
            DelayPreference::parse(" TUN "),
            Some(DelayPreference::TunRelay)
        );
        assert_eq!(DelayPreference::parse("fast"), None);
        assert_eq!(
            DelayPreference::Netem.resolve().unwrap(),
            DelayPreference::Netem
        );
    }

    fn exit_status(code: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(code << 8)
    }
}
