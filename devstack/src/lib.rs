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
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `cmd` as the leader of a new process group, stdin closed, stdout and stderr
/// appended to `log`.
pub fn spawn_group(cmd: &mut Command, log: &Path) -> std::io::Result<Child> {
    let out = File::options().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
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
}

/// Kills the group `child` leads outright (no chance to close connections cleanly), and
/// waits for the leader.
pub fn kill_group(child: &mut Child) {
    signal_group(child, libc::SIGKILL);
    let _ = child.wait();
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
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
            assert!(Instant::now() < deadline, "no output logged");
            std::thread::sleep(Duration::from_millis(20));
        }
        stop_group(&mut child, Duration::from_secs(1));
        assert!(child.try_wait().unwrap().is_some());
        assert!(free_port().unwrap() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
