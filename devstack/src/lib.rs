//! Process helpers shared by the end-to-end suite and the benchmark: each program under test
//! (the fake exchange, `wrangler dev` with its two workerd processes) runs in a process group
//! of its own, so stopping it stops everything it started.
//!
//! Never shells out to `kill`: on this machine kind a misparsed negative pid there signalled
//! far more than the group; `killpg` on a group this crate created is exact.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Process groups started and not yet stopped, so an interrupt can stop them too: slots
/// that a signal handler may read (atomics only; 0 is a free slot).
static GROUPS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];
static HANDLER: Once = Once::new();

fn remember(pgid: i32) {
    for slot in &GROUPS {
        if slot
            .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

fn forget(pgid: i32) {
    for slot in &GROUPS {
        let _ = slot.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// On SIGINT or SIGTERM: kill every group still running, then exit. Without it, a bench or
/// test run stopped with Ctrl-C leaves its `wrangler dev` and fake exchange behind, holding
/// ports and CPU. Only async-signal-safe calls (`killpg`, `_exit`).
extern "C" fn on_interrupt(signal: libc::c_int) {
    for slot in &GROUPS {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 1 {
            // SAFETY: a group `spawn_group` created; killpg only sends a signal.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
    // SAFETY: _exit ends the process without running anything else.
    unsafe { libc::_exit(128 + signal) }
}

fn install_handler() {
    HANDLER.call_once(|| {
        let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: installs a handler that only makes async-signal-safe calls.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
    });
}

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `cmd` as the leader of a new process group, stdin closed, stdout and stderr
/// appended to `log`. The group is stopped with this process if it is interrupted.
pub fn spawn_group(cmd: &mut Command, log: &Path) -> std::io::Result<Child> {
    install_handler();
    let out = File::options().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    if let Ok(pgid) = i32::try_from(child.id()) {
        remember(pgid);
    }
    Ok(child)
}

/// Signals the process group `child` leads.
fn signal_group(child: &Child, signal: i32) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal, to the group `spawn_group` created: its id is the
    // child's pid, never ours.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Stops the group `child` leads: SIGTERM, up to `grace` for the leader to exit, then
/// SIGKILL to whatever is left of the group.
pub fn stop_group(child: &mut Child, grace: Duration) {
    signal_group(child, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(child, libc::SIGKILL);
    let _ = child.wait();
    forget_child(child);
}

fn forget_child(child: &Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        forget(pgid);
    }
}

/// Kills the group `child` leads outright (no chance to close connections cleanly), and
/// waits for the leader.
pub fn kill_group(child: &mut Child) {
    signal_group(child, libc::SIGKILL);
    let _ = child.wait();
    forget_child(child);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_started_logged_and_stopped_whole() {
        let dir = std::env::temp_dir().join(format!("devstack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("sh.log");
        // The leader starts a grandchild; stopping the group must stop both.
        let mut child = spawn_group(
            Command::new("sh").args(["-c", "echo started; sleep 30 & wait"]),
            &log,
        )
        .unwrap();
        let held = |pgid: u32| {
            GROUPS
                .iter()
                .any(|s| s.load(Ordering::SeqCst) as u32 == pgid)
        };
        assert!(held(child.id()), "remembered for an interrupt");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
            assert!(Instant::now() < deadline, "no output logged");
            std::thread::sleep(Duration::from_millis(20));
        }
        stop_group(&mut child, Duration::from_secs(1));
        assert!(child.try_wait().unwrap().is_some());
        assert!(!held(child.id()), "forgotten once stopped");
        assert!(free_port().unwrap() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
