//! A bounded pool of worker threads for batch judging: `workers` threads take items in
//! order from a shared counter; results come back in input order. Each run is a separate
//! process, so the threads mostly wait; sizing the pool by cores bounds CPU contention.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Applies `f` to every item on at most `workers` threads; results in input order.
pub(crate) fn map_parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let threads = workers.max(1).min(items.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else {
                    break;
                };
                let result = f(index, item);
                results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every index is processed exactly once"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_bounds_concurrency() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u64> = (0..40).collect();
        let out = map_parallel(&items, 3, |i, x| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            (i as u64, x * 2)
        });
        assert_eq!(out.len(), 40);
        for (i, (index, doubled)) in out.iter().enumerate() {
            assert_eq!(*index, i as u64);
            assert_eq!(*doubled, 2 * i as u64);
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(map_parallel(&Vec::<u8>::new(), 4, |_, x| *x).is_empty());
    }
}
