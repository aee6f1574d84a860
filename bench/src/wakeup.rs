//! `ringlog-bench wakeup`: the machine's own floor for request/response
//! latency, measured as fio and iperf3 measure the disk's and loopback's
//! limits. Two threads on different CPUs pass a byte back and forth over a
//! Unix socket pair, so every pass wakes a thread blocked in `read`, as a
//! request wakes a broker core and its response wakes the client.
//!
//! On bare metal a round trip takes a few microseconds. On a virtual machine
//! whose idle vCPUs halt, each wake-up also waits for the hypervisor to run
//! the halted vCPU again: on the development VM 66-77 µs a round trip with
//! guest halt polling off, 10-14 µs with it on (docs/PERFORMANCE.md,
//! session 11). An end-to-end Kafka path pays several such wake-ups.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Round trips in the first part of a run are not recorded: the threads
/// start and settle on their CPUs.
const SETTLE_MS: u64 = 100;

/// What one run measured.
pub struct RoundTrips {
    /// Nanoseconds per round trip.
    pub latency_ns: Histogram<u64>,
    pub elapsed: Duration,
    /// The CPUs the two threads were pinned to; `None` with one CPU allowed.
    pub cpus: Option<(usize, usize)>,
}

/// Passes a byte back and forth for `duration` between a thread on one CPU
/// and a thread on another.
pub fn measure(duration: Duration) -> anyhow::Result<RoundTrips> {
    let cpus = two_allowed_cpus();
    let (mut here, mut there) = UnixStream::pair()?;
    let echo = std::thread::Builder::new().name("wakeup-echo".into()).spawn(move || {
        if let Some((_, cpu)) = cpus {
            pin_current_thread(cpu);
        }
        let mut byte = [0u8; 1];
        // A zero-byte read is the other end closing: the run is over.
        while matches!(there.read(&mut byte), Ok(1)) {
            if there.write_all(&byte).is_err() {
                break;
            }
        }
    })?;
    let measured = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some((cpu, _)) = cpus {
                    pin_current_thread(cpu);
                }
                ping(&mut here, duration)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("wakeup thread panicked"))?
    });
    drop(here);
    echo.join()
        .map_err(|_| anyhow::anyhow!("wakeup echo thread panicked"))?;
    let (latency_ns, elapsed) = measured?;
    Ok(RoundTrips {
        latency_ns,
        elapsed,
        cpus,
    })
}

fn ping(stream: &mut UnixStream, duration: Duration) -> anyhow::Result<(Histogram<u64>, Duration)> {
    let mut latency_ns = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let start = Instant::now();
    let record_from = start + Duration::from_millis(SETTLE_MS);
    let until = record_from + duration;
    let mut byte = [1u8; 1];
    loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        stream.write_all(&byte)?;
        stream.read_exact(&mut byte)?;
        if sent >= record_from {
            let _ = latency_ns.record(sent.elapsed().as_nanos().max(1) as u64);
        }
    }
    Ok((latency_ns, until.saturating_duration_since(record_from)))
}

/// The first two CPUs this process may run on, if it may run on two.
fn two_allowed_cpus() -> Option<(usize, usize)> {
    // SAFETY: cpu_set_t is a plain bit set; sched_getaffinity fills it for
    // the calling thread and CPU_ISSET only reads it.
    let allowed: Vec<usize> = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    };
    match allowed[..] {
        [first, second, ..] => Some((first, second)),
        _ => None,
    }
}

fn pin_current_thread(cpu: usize) {
    // SAFETY: as above; sched_setaffinity(0, ..) affects only this thread.
    let pinned = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !pinned {
        eprintln!("ringlog-bench: could not pin a wakeup thread to CPU {cpu}; measuring unpinned");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recorded_round_trip_is_counted_once_and_the_threads_finish() {
        let measured = measure(Duration::from_millis(50)).expect("measures");
        assert!(!measured.latency_ns.is_empty(), "some round trips in 50 ms");
        assert!(measured.latency_ns.min() >= 1);
        assert_eq!(measured.elapsed, Duration::from_millis(50));
        if let Some((first, second)) = measured.cpus {
            assert_ne!(first, second);
        }
    }
}
