//! Work spread over a few threads: what hashing many files, restoring a
//! folder's files and reading a big table share.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads for file and table work: the machine's cores, at most 8.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8)
}

/// `f` over every item on `threads` threads, each taking the next item
/// when done with one; the results in the items' order. `scratch` makes
/// each thread's reusable buffer.
pub fn map<T: Sync, S, R: Send>(
    items: &[T],
    threads: usize,
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&T, &mut S) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                let mut buf = scratch();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item, &mut buf);
                    if let Ok(mut g) = results.lock() {
                        g.push((i, r));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_item_once_in_order() {
        let items: Vec<u32> = (0..1000).collect();
        let out = super::map(
            &items,
            3,
            || 0u32,
            |i, seen| {
                *seen += 1;
                i * 2
            },
        );
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(super::map(&[] as &[u32], 4, || (), |i, ()| *i).is_empty());
    }
}
