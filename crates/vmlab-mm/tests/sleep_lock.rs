//! `sync::SleepLock`, the lock held across host I/O: a waiter yields to the
//! host between tries instead of spinning, and gets the lock once it is free.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use vmlab_mm::sync::{Relax, SleepLock};

struct Counting(AtomicUsize);

impl Relax for Counting {
    fn relax(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        std::thread::yield_now();
    }
}

#[test]
fn a_waiter_yields_while_the_holder_does_io_and_then_gets_the_lock() {
    let lock = Arc::new(SleepLock::new(0u32));
    let held = Arc::new(AtomicBool::new(false));
    let relax = Arc::new(Counting(AtomicUsize::new(0)));
    let holder = {
        let (lock, held, r) = (lock.clone(), held.clone(), relax.clone());
        std::thread::spawn(move || {
            let mut g = lock.lock(&*r);
            held.store(true, Ordering::Release);
            // Stands for a host read or write under the lock.
            std::thread::sleep(std::time::Duration::from_millis(50));
            *g += 1;
        })
    };
    while !held.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    let before = relax.0.load(Ordering::Relaxed);
    let g = lock.lock(&*relax);
    assert_eq!(*g, 1, "the waiter got the lock before the holder let it go");
    assert!(relax.0.load(Ordering::Relaxed) > before, "the waiter never yielded");
    drop(g);
    holder.join().unwrap();
    // Free: taken at once, no yield.
    let n = relax.0.load(Ordering::Relaxed);
    drop(lock.lock(&*relax));
    assert_eq!(relax.0.load(Ordering::Relaxed), n);
}
