//! Runs one measured sync as a child process (`hubsync --config FILE sync NAME --json`), so its
//! peak memory is its own and not the emulator's or the benchmark's. The child is reaped with
//! `wait4`, whose `rusage` carries the kernel's high-water mark of its resident memory (the
//! `VmHWM` of `/proc/PID/status`) and its CPU time.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::super::CliError;

/// What a child run cost and printed.
#[derive(Debug, Clone)]
pub struct ChildRun {
    pub wall: Duration,
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Peak resident memory, in bytes.
    pub peak_rss_bytes: u64,
    /// The sync's `--json` summary.
    pub summary: serde_json::Value,
}

/// How to start the measured syncs.
pub struct SyncCommand {
    pub exe: PathBuf,
    pub config: PathBuf,
    /// Environment the config reads (`${VAR}`).
    pub env: Vec<(String, String)>,
}

impl SyncCommand {
    /// Runs `hubsync --config FILE sync NAME --json`, its log in `log`; fails unless the run
    /// succeeded.
    pub async fn run(&self, sync: &str, log: &Path) -> Result<ChildRun, CliError> {
        let io = |what: &str, e: std::io::Error| CliError::Failed(format!("bench: {what}: {e}"));
        let stderr = std::fs::File::create(log).map_err(|e| io(&format!("cannot create {}", log.display()), e))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("--config")
            .arg(&self.config)
            .args(["--log", "hubsync=info", "sync", sync, "--json"])
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| io(&format!("cannot start {}", self.exe.display()), e))?;
        let pid = child.id() as libc::pid_t;
        let mut stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(out) = stdout.as_mut() {
                let _ = out.read_to_string(&mut text);
            }
            text
        });
        // Reaped here, not through `child.wait()`, which would discard the resource usage; the
        // `Child` handle is never waited on (dropping it does not wait either).
        let reaped = tokio::task::spawn_blocking(move || wait4(pid))
            .await
            .map_err(|e| CliError::Failed(format!("bench: waiting for the sync: {e}")))?;
        let wall = started.elapsed();
        drop(child);
        let (exit, usage) = reaped.map_err(|e| io("cannot wait for the sync", e))?;
        let stdout = reader.join().unwrap_or_default();
        if exit != Some(0) {
            let tail = log_tail(log);
            return Err(CliError::Failed(format!(
                "bench: `hubsync sync {sync}` exited with {}; its log ({}) ends with:\n{tail}",
                exit.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into()),
                log.display()
            )));
        }
        let summary: serde_json::Value = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .ok_or_else(|| CliError::Failed(format!("bench: `hubsync sync {sync}` printed no JSON summary")))?;
        Ok(ChildRun { wall, cpu: usage.cpu, peak_rss_bytes: usage.max_rss_bytes, summary })
    }
}

/// The resource usage `wait4` reports.
struct Usage {
    cpu: Duration,
    max_rss_bytes: u64,
}

/// Waits for child `pid` to end; returns its exit code (`None` when a signal ended it) and usage.
fn wait4(pid: libc::pid_t) -> std::io::Result<(Option<i32>, Usage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right types, and `pid` is a
        // child of this process that nothing else waits for.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let exit = if libc::WIFEXITED(status) { Some(libc::WEXITSTATUS(status)) } else { None };
    let time = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    // Linux reports `ru_maxrss` in kilobytes.
    let usage =
        Usage { cpu: time(usage.ru_utime) + time(usage.ru_stime), max_rss_bytes: usage.ru_maxrss as u64 * 1024 };
    Ok((exit, usage))
}

/// The last lines of a log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
