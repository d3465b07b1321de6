//! CPU time of processes, read from Linux's `/proc`: what a run costs each orderer process
//! (and the load generator itself) over exactly the run's window, so that a figure such as
//! "µs of CPU per ordered envelope" compares systems fairly whatever their thread models.

use std::time::Duration;

use serde::Serialize;

/// `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100 for user space whatever the
/// kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// User plus system CPU time a process has used so far (all its threads, not its children);
/// `None` where `/proc` is not there or the process is gone.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The CPU time in a `/proc/<pid>/stat` line: fields 14 and 15 (utime, stime), counted after
/// the command name, which is in parentheses and may itself hold spaces or parentheses.
fn parse_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

/// A process whose CPU time a run measures, by the role it plays ("leader", "follower",
/// "client", …).
#[derive(Debug, Clone)]
pub struct Watched {
    pub label: String,
    pub pid: u32,
}

/// What a watched process spent during a run.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub label: String,
    pub pid: u32,
    /// CPU seconds between the first send and the last delivery.
    pub seconds: f64,
    /// `seconds` per delivered envelope, in µs.
    pub us_per_envelope: f64,
}

/// CPU times of `watched` at one instant, in order (`None` for a process that is gone).
pub fn snapshot(watched: &[Watched]) -> Vec<Option<Duration>> {
    watched.iter().map(|w| process_cpu(w.pid)).collect()
}

/// What each watched process used between two snapshots, per delivered envelope.
pub fn usage(
    watched: &[Watched],
    before: &[Option<Duration>],
    after: &[Option<Duration>],
    delivered: u64,
) -> Vec<CpuUse> {
    debug_assert_eq!(watched.len(), before.len());
    debug_assert_eq!(watched.len(), after.len());
    watched
        .iter()
        .zip(before.iter().zip(after))
        .filter_map(|(w, (b, a))| {
            let seconds = a.as_ref()?.saturating_sub(*b.as_ref()?).as_secs_f64();
            Some(CpuUse {
                label: w.label.clone(),
                pid: w.pid,
                seconds,
                us_per_envelope: if delivered > 0 {
                    seconds * 1e6 / delivered as f64
                } else {
                    0.0
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_utime_plus_stime_even_with_a_name_holding_spaces_and_parentheses() {
        let line = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_stat(line), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu_and_a_busy_loop_adds_to_it() {
        let me = std::process::id();
        let before = process_cpu(me).expect("/proc on Linux");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = process_cpu(me).unwrap();
        // 200 ms of spinning, counted in 10 ms ticks.
        assert!(
            after >= before + Duration::from_millis(100),
            "{before:?} → {after:?}"
        );
    }
}
