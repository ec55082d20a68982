//! The measurements of issue 7, one module each. Every scenario starts its own emulator,
//! runs watchpool and the peer against it in the same run, and returns a report section.

pub mod budget;
pub mod decode;
pub mod faults;
pub mod idle;
pub mod memory;
pub mod recovery;
pub mod scale;
pub mod throughput;

use std::time::{Duration, Instant};

use kube_emulator::{Emulator, FaultId};

use crate::BenchError;

/// Waits until fault `id` has been applied at least `hits` times, or fails after `timeout`.
pub async fn wait_fault_hits(
    emu: &Emulator,
    id: FaultId,
    hits: u64,
    timeout: Duration,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        let applied = emu
            .faults()
            .list()
            .iter()
            .find(|f| f.id == id)
            .map_or(0, |f| f.hits);
        if applied >= hits {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Setup(format!(
                "fault {id} applied {applied} times, wanted {hits}, within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The median of `xs` (0 when empty).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied().unwrap_or(0.0)
    } else {
        (v.get(mid - 1).copied().unwrap_or(0.0) + v.get(mid).copied().unwrap_or(0.0)) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
