//! Busy polling before a runtime worker goes to sleep (`serve --busy-poll-us N`).
//!
//! # Why
//!
//! With few connections, each request finds the server's worker asleep in
//! `epoll_wait`. On a virtual machine whose idle CPU halts (no guest halt
//! polling, as on the machines this was measured on), waking it costs a
//! halt exit, an inter-processor interrupt and a context switch: `GET
//! /healthz` took 47-57 us of server CPU a request over one keep-alive
//! connection, against 14 us under 32 connections, where the worker never
//! sleeps (BENCHMARKS.md, PostGIS section, tenth session). That wake-up,
//! not the lookup (~0.1 us), set the pace of one-point-a-request clients.
//!
//! # How
//!
//! When a worker has no task left, the runtime calls [`before_park`]
//! (tokio's `on_thread_park` hook) before it sleeps. For up to the budget,
//! the worker then polls a second epoll set of its own that watches the
//! listening socket and every accepted connection ([`watch`], level
//! triggered, read readiness) with a zero timeout, and stops as soon as a
//! socket has something to read or a task is queued for the runtime. It then
//! parks as usual: tokio's own `epoll_wait` finds the event already there
//! and returns without sleeping. A request that arrives within the budget
//! therefore costs no wake-up; one that arrives later costs the budget in
//! CPU and then the usual wake-up.
//!
//! The cost is CPU time: at most the budget after each burst of work, on
//! each idle worker. Leave it off (the default, 0) where CPUs are shared or
//! billed by use; turn it on where per-request latency at low concurrency
//! matters more. Under load, workers rarely park, so it changes nothing.
//!
//! Sockets leave the set by themselves: the kernel removes a file from
//! every epoll set when its last descriptor is closed.
//!
//! Correctness does not depend on the poll: the hook only delays parking by
//! at most the budget. A task woken from another thread meanwhile (the
//! store's threads, say) is queued for the runtime, which ends the poll, and
//! tokio's parking protocol checks its queues once more after the hook (the
//! last worker to stop searching for work does), so no wake-up is lost;
//! tests/busy_poll.rs runs the real server this way with one worker and
//! with several.

use std::sync::OnceLock;
use std::time::Duration;

/// The process's poller, set once by [`install`].
static POLLER: OnceLock<Poller> = OnceLock::new();

/// Error setting up the poller.
#[derive(Debug, thiserror::Error)]
pub enum BusyPollError {
    /// The operating system refused the epoll set.
    #[error("creating the busy-poll epoll set: {0}")]
    Epoll(#[source] std::io::Error),
    /// Not available on this operating system.
    #[error("busy polling needs Linux (epoll)")]
    Unsupported,
    /// [`install`] was called twice.
    #[error("the busy poller is already installed")]
    Installed,
}

struct Poller {
    #[cfg(target_os = "linux")]
    epoll: std::os::fd::OwnedFd,
    budget: Duration,
}

/// Sets up the process's busy poller with a spin budget (`budget` > 0).
/// Call it before the runtime starts, and give the runtime [`before_park`]
/// as its `on_thread_park` hook.
pub fn install(budget: Duration) -> Result<(), BusyPollError> {
    let poller = Poller::new(budget)?;
    POLLER.set(poller).map_err(|_| BusyPollError::Installed)
}

/// Adds a socket (the listener or an accepted connection) to the set the
/// poller watches; does nothing when no poller is installed. A socket that
/// cannot be added is only logged: it is then served with the usual
/// wake-ups.
#[cfg(target_os = "linux")]
pub fn watch(fd: std::os::fd::BorrowedFd<'_>) {
    if let Some(p) = POLLER.get() {
        if let Err(e) = p.add(fd) {
            tracing::debug!(error = %e, "socket not added to the busy-poll set");
        }
    }
}

/// The runtime's `on_thread_park` hook: spins until a watched socket is
/// readable, a task is queued for the runtime, or the budget is spent.
/// Does nothing when no poller is installed.
pub fn before_park() {
    if let Some(p) = POLLER.get() {
        p.spin();
    }
}

#[cfg(target_os = "linux")]
impl Poller {
    fn new(budget: Duration) -> Result<Self, BusyPollError> {
        use rustix::event::epoll;
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| BusyPollError::Epoll(e.into()))?;
        Ok(Self { epoll, budget })
    }

    fn add(&self, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
        use rustix::event::epoll;
        let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        epoll::add(&self.epoll, fd, epoll::EventData::new_u64(0), flags)?;
        Ok(())
    }

    /// Whether a watched socket is readable now (an error counts as yes:
    /// the worker then parks as usual).
    fn ready(&self) -> bool {
        use rustix::event::{epoll, Timespec};
        let mut events = [epoll::Event { flags: epoll::EventFlags::empty(), data: epoll::EventData::new_u64(0) }];
        let now = Timespec { tv_sec: 0, tv_nsec: 0 };
        !matches!(epoll::wait(&self.epoll, &mut events[..], Some(&now)), Ok(0))
    }

    fn spin(&self) {
        let start = std::time::Instant::now();
        let runtime = tokio::runtime::Handle::try_current().ok();
        loop {
            if self.ready() || runtime.as_ref().is_some_and(|h| h.metrics().global_queue_depth() > 0) {
                return;
            }
            if start.elapsed() >= self.budget {
                return;
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(not(target_os = "linux"))]
impl Poller {
    fn new(_budget: Duration) -> Result<Self, BusyPollError> {
        Err(BusyPollError::Unsupported)
    }

    fn spin(&self) {
        let _ = self.budget;
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    /// A connected pair of loopback sockets: (client, server side).
    fn pair(listener: &std::net::TcpListener) -> (std::net::TcpStream, std::net::TcpStream) {
        let client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    #[test]
    fn a_readable_socket_ends_the_spin_and_a_quiet_one_spends_the_budget() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let (mut client, server) = pair(&listener);
        let poller = Poller::new(Duration::from_secs(10)).expect("epoll set");
        poller.add(server.as_fd()).expect("watch");
        assert!(!poller.ready(), "nothing sent yet");
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("send");
        // Loopback delivers before write returns, so the socket is readable.
        assert!(poller.ready(), "a request waits to be read");
        let t = std::time::Instant::now();
        poller.spin();
        assert!(t.elapsed() < Duration::from_secs(10), "the spin ends at once on a readable socket");

        let (_quiet_client, quiet_server) = pair(&listener);
        let quiet = Poller::new(Duration::from_millis(2)).expect("epoll set");
        quiet.add(quiet_server.as_fd()).expect("watch");
        let t = std::time::Instant::now();
        quiet.spin();
        assert!(t.elapsed() >= Duration::from_millis(2), "with nothing to read the spin lasts its budget");
    }

    #[test]
    fn a_closed_socket_leaves_the_set() {
        let poller = Poller::new(Duration::from_millis(1)).expect("epoll set");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let (mut client, server) = pair(&listener);
        poller.add(server.as_fd()).expect("watch");
        client.write_all(b"x").expect("send");
        assert!(poller.ready());
        drop(server);
        assert!(!poller.ready(), "the kernel drops a closed socket from the set");
    }
}
