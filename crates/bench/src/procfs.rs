//! Process facts the bench needs from Linux: resident memory of a process
//! (`VmRSS` in `/proc/PID/status`), waiting for it to settle, and the
//! open-file limit.

use std::time::Duration;

/// Why a process fact could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// `/proc/PID/status` could not be read (no such process?).
    #[error("read /proc/{pid}/status")]
    Read {
        /// The process id.
        pid: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// The status file has no parsable `VmRSS` line.
    #[error("/proc/{0}/status has no VmRSS line")]
    NoRss(u32),
    /// Reading or raising `RLIMIT_NOFILE` failed.
    #[error("RLIMIT_NOFILE: {0}")]
    Limit(std::io::Error),
}

/// Resident set size of process `pid` in bytes.
pub async fn rss_bytes(pid: u32) -> Result<u64, ProcError> {
    let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
        .await
        .map_err(|source| ProcError::Read { pid, source })?;
    parse_vm_rss(&status).ok_or(ProcError::NoRss(pid))
}

/// CPU time (user + system) process `pid` has used, in seconds: fields 14 and
/// 15 of `/proc/PID/stat` in clock ticks (100 a second on Linux).
pub async fn cpu_secs(pid: u32) -> Result<f64, ProcError> {
    let stat = tokio::fs::read_to_string(format!("/proc/{pid}/stat"))
        .await
        .map_err(|source| ProcError::Read { pid, source })?;
    parse_cpu_ticks(&stat)
        .map(|t| t as f64 / 100.0)
        .ok_or(ProcError::NoRss(pid))
}

/// utime + stime of a `/proc/PID/stat` line (after the parenthesised command name).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of this process in bytes.
pub async fn own_rss_bytes() -> Result<u64, ProcError> {
    rss_bytes(std::process::id()).await
}

/// The `VmRSS:  1234 kB` value of a status file, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

/// How [`settled_rss`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The last sample, in bytes.
    pub bytes: u64,
    /// Whether the value became stable before the timeout.
    pub stable: bool,
    /// Samples taken.
    pub samples: u32,
}

/// Samples `pid`'s RSS every `interval` until three consecutive samples lie
/// within 0.5% (or 64 KiB) of each other, or until `timeout`.
pub async fn settled_rss(
    pid: u32,
    interval: Duration,
    timeout: Duration,
) -> Result<Settled, ProcError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut window: Vec<u64> = Vec::with_capacity(3);
    let mut samples = 0;
    loop {
        let bytes = rss_bytes(pid).await?;
        samples += 1;
        if window.len() == 3 {
            window.remove(0);
        }
        window.push(bytes);
        if window.len() == 3 && is_stable(&window) {
            return Ok(Settled {
                bytes,
                stable: true,
                samples,
            });
        }
        if tokio::time::Instant::now() + interval > deadline {
            return Ok(Settled {
                bytes,
                stable: false,
                samples,
            });
        }
        tokio::time::sleep(interval).await;
    }
}

fn is_stable(window: &[u64]) -> bool {
    let (Some(&low), Some(&high)) = (window.iter().min(), window.iter().max()) else {
        return false;
    };
    let tolerance = (high / 200).max(64 * 1024);
    high - low <= tolerance
}

/// Raises the soft open-file limit to the hard limit and returns the new soft
/// limit.
pub fn raise_nofile_limit() -> Result<u64, ProcError> {
    rlimit::increase_nofile_limit(u64::MAX).map_err(ProcError::Limit)
}

/// The current soft open-file limit.
pub fn nofile_limit() -> Result<u64, ProcError> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .map_err(ProcError::Limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat = "1234 (nats server) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 1 1";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tswitchboard\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn stability_window() {
        assert!(is_stable(&[100_000_000, 100_100_000, 100_200_000]));
        assert!(!is_stable(&[100_000_000, 101_000_000, 102_000_000]));
        assert!(is_stable(&[1_000, 30_000, 60_000]));
    }

    #[tokio::test]
    async fn reads_own_rss() {
        let rss = own_rss_bytes().await.unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
        assert!(matches!(
            rss_bytes(u32::MAX).await,
            Err(ProcError::Read { .. })
        ));
        let settled = settled_rss(
            std::process::id(),
            Duration::from_millis(1),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(settled.samples >= 1);
        assert!(raise_nofile_limit().unwrap() >= nofile_limit().unwrap().min(1));
    }
}
