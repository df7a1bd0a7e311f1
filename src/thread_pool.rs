//! A pool of scoped threads for work whose items are independent (the
//! boot's slot builds): how many threads, and a map over them that keeps
//! the items' order.

/// How many threads build slots: one per 8 profiles (none below 16), at
/// most one per CPU and at most 8. tmpfs scales with cores, but starting
/// and joining a thread costs about as much as a few slots: below 16
/// profiles one thread is faster (`bench/RESULTS.md`).
pub fn workers(profiles: usize) -> usize {
    if profiles < 16 {
        return 1;
    }
    cpus().min(8).min(profiles / 8).max(1)
}

/// The CPUs this process may run on: `sched_getaffinity`, one system call
/// (std's available_parallelism also reads cgroup files from /proc).
fn cpus() -> usize {
    // SAFETY: an all-zero cpu_set_t is valid; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return 1;
    }
    // SAFETY: `set` was filled by the kernel.
    (unsafe { libc::CPU_COUNT(&set) }).max(1) as usize
}

/// `f` over `items` on `workers` threads (the caller's included), results
/// in the order of `items`. A thread that cannot be started is no error:
/// the others do its share.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { return out };
            out.push((i, f(item)));
        }
    };
    let mut all = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..workers).filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok()).collect();
        let mut all = work();
        for h in helpers {
            match h.join() {
                Ok(part) => all.extend(part),
                // Only a bug panics; let it be seen as one.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}
