//! Handing one part of a pass to a pool worker that is already waiting for it.
//!
//! [`join`] runs one closure on the calling thread and offers the other to the current rayon
//! pool. The first time, the offer goes out as a rayon job (`rayon::spawn`), which wakes a
//! worker the way any job does. That worker then stays: after running the part it spins on the
//! calling thread's relay for [`LINGER`], so the caller's next pass hands its part over with one
//! store that the worker sees within a cache-line transfer, instead of a job that a worker in
//! rayon's idle loop finds between two `sched_yield` calls. Measured on 2 vCPUs (Zen 4, global
//! pool, caller outside it): through `rayon::in_place_scope`, a part started a mean 1.0-1.1 us
//! after it was spawned and the call returned 0.4 us after the later part ended, 1.5 us of a
//! 42 us pass (384 -> 64 on 14 x 14) and 1.4 of a 5 us one.
//!
//! A relay belongs to one calling thread, and through it to one pool: a thread outside every
//! pool always hands to the global pool, and a pool's worker (a caller inside
//! `ThreadPool::install`) only ever to its own. An offer nobody has claimed by the time the
//! caller is done with its own part is taken back and run on the caller, so a busy or asleep
//! pool costs at most the one-thread time, never a wait.

use std::any::Any;
use std::cell::{OnceCell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread, ThreadId};
use std::time::{Duration, Instant};

/// How long a worker keeps polling for the next part after its last one: long against the gap
/// between two layers called back to back (and the host's work between them), short against
/// the spinning of the peers' own thread pools (an OpenMP runtime's default block time is 200
/// ms), so a core is not held much past a burst of calls.
pub const LINGER: Duration = Duration::from_micros(200);

/// How long, beyond a few times its own part, a caller waits for a claimed part by yielding
/// before it parks (a parked thread's wake-up costs microseconds; a yield, when no other thread
/// wants the core, well under one).
const YIELD_FOR: Duration = Duration::from_millis(2);

/// One poll's pause in a spin, `spins` polls into it: a spin-loop hint, and every 256 polls
/// (a few microseconds) a `sched_yield`, so that a spinning thread that shares its core with
/// the thread it waits for (an unpinned pool: a woken worker often lands on its waker's core)
/// lets that one run. Without the yield, a caller whose core the lingering worker shared came
/// back the whole [`LINGER`] after the worker was done (90th percentile 260-280 us against a
/// 42 us median, a pass after 3 ms idle, 2-vCPU VM). A lingering worker (`pool_work`) first
/// runs a job of its pool if one is waiting, so lingering never holds up the pool's own work.
fn snooze(spins: u32, pool_work: bool) {
    if spins % 256 != 0 {
        core::hint::spin_loop();
    } else if !(pool_work && rayon::yield_now() == Some(rayon::Yield::Executed)) {
        thread::yield_now();
    }
}

/// One thread's offers to its pool.
struct Relay {
    /// The offered part, null when none is waiting to be claimed.
    slot: AtomicPtr<Task>,
    /// Workers spinning on this relay (or spawned to): 0 means the next offer needs a job.
    lingering: AtomicUsize,
    /// The thread that makes the offers; a linger job that lands on it returns at once.
    owner: ThreadId,
}

thread_local! {
    static RELAY: OnceCell<Arc<Relay>> = const { OnceCell::new() };
}

/// An offered closure, on the offering thread's stack until it is done.
struct Task {
    /// Runs and consumes the closure behind `data` (monomorphised per closure type).
    call: unsafe fn(*const ()) -> Option<Box<dyn Any + Send>>,
    data: *const (),
    /// Set (Release) by the thread that claimed the task, once it no longer touches it.
    done: AtomicBool,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    caller: Thread,
}

/// Runs the closure in `data` (an `UnsafeCell<Option<F>>`); a panic's payload is returned.
///
/// # Safety
/// `data` points to a live `UnsafeCell<Option<F>>` that no other thread touches during the call.
unsafe fn call_once<F: FnOnce()>(data: *const ()) -> Option<Box<dyn Any + Send>> {
    // SAFETY: the caller owns the cell for the call (it claimed the task).
    let f = unsafe { (*(*data.cast::<UnsafeCell<Option<F>>>()).get()).take() }?;
    catch_unwind(AssertUnwindSafe(f)).err()
}

impl Task {
    /// Runs a task claimed from a relay on this thread and marks it done.
    ///
    /// # Safety
    /// `this` was claimed by this thread (swapped out of a relay's slot) and not yet marked
    /// done; its offering thread waits for `done` before the task leaves its stack.
    unsafe fn run_claimed(this: *const Task) {
        // SAFETY: the task lives until `done` is set below, and only this thread calls it.
        let (panic, caller) = unsafe { (((*this).call)((*this).data), (*this).caller.clone()) };
        if let Some(p) = panic {
            // SAFETY: as above, the task is still alive.
            let slot = unsafe { &(*this).panic };
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        }
        // SAFETY: still alive here; after this store the offering thread may free it, so
        // nothing below touches it (`caller` is a clone).
        unsafe { (*this).done.store(true, Ordering::Release) };
        caller.unpark();
    }
}

impl Relay {
    /// Swaps the waiting task out of the slot: the claimer then owns running it. SeqCst, for the
    /// last look of a worker leaving [`Relay::linger`] (on x86 a SeqCst load is a plain load).
    fn claim(&self) -> Option<*const Task> {
        let p = self.slot.load(Ordering::SeqCst);
        if p.is_null() {
            return None;
        }
        self.slot
            .compare_exchange(p, core::ptr::null_mut(), Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|p| p.cast_const())
    }

    /// A worker's loop: claims and runs offers until none came for [`LINGER`].
    fn linger(self: Arc<Self>) {
        if thread::current().id() == self.owner {
            // The offering thread itself picked this job up (it is a worker of its pool):
            // spinning here would only delay it. The offer is taken back by the caller.
            self.lingering.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let mut last = Instant::now();
        let mut spins = 0u32;
        loop {
            if let Some(task) = self.claim() {
                // SAFETY: claimed above; the offering thread waits for `done`.
                unsafe { Task::run_claimed(task) };
                last = Instant::now();
                continue;
            }
            spins = spins.wrapping_add(1);
            // The clock only every 64 polls: reading it costs more than a poll.
            if spins % 64 == 0 && last.elapsed() >= LINGER {
                self.lingering.fetch_sub(1, Ordering::SeqCst);
                // An offer made after the caller read `lingering` as still 1 would wait for
                // nobody: look once more after leaving (the caller stores the offer before it
                // reads the count, this thread leaves before it reads the slot, all four
                // SeqCst, so one of the two sees the other; missed, the caller would only take
                // its offer back).
                match self.claim() {
                    Some(task) => {
                        self.lingering.fetch_add(1, Ordering::SeqCst);
                        // SAFETY: claimed above; the offering thread waits for `done`.
                        unsafe { Task::run_claimed(task) };
                        last = Instant::now();
                    }
                    None => return,
                }
            }
            snooze(spins, true);
        }
    }
}

/// Runs `mine` on this thread and `theirs` on a worker of the current rayon pool (on this thread
/// too when no worker claims it before `mine` is done); returns once both have run. A panic in
/// either is resumed here after both have finished.
pub fn join<A: FnOnce(), B: FnOnce() + Send>(mine: A, theirs: B) {
    RELAY.with(|r| {
        // Borrowed, not cloned: a clone per call would write the reference count that shares
        // a cache line with the slot the worker polls.
        let relay = r.get_or_init(|| {
            Arc::new(Relay {
                slot: AtomicPtr::new(core::ptr::null_mut()),
                lingering: AtomicUsize::new(0),
                owner: thread::current().id(),
            })
        });
        join_on(relay, mine, theirs);
    });
}

/// [`join`] on this thread's relay.
fn join_on<A: FnOnce(), B: FnOnce() + Send>(relay: &Arc<Relay>, mine: A, theirs: B) {
    let theirs = UnsafeCell::new(Some(theirs));
    let task = Task {
        call: call_once::<B>,
        data: (&raw const theirs).cast(),
        done: AtomicBool::new(false),
        panic: Mutex::new(None),
        caller: thread::current(),
    };
    let ptr = (&raw const task).cast_mut();
    // Only this thread offers on its relay, one offer at a time (this function does not return
    // before its offer is claimed back or done), so the slot is empty unless `mine` of an
    // outer call on this thread is still running: then run both here.
    if relay
        .slot
        .compare_exchange(
            core::ptr::null_mut(),
            ptr,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_err()
    {
        mine();
        // SAFETY: never offered, so only this thread has seen `theirs`.
        if let Some(p) = unsafe { call_once::<B>((&raw const theirs).cast()) } {
            resume_unwind(p);
        }
        return;
    }
    if relay.lingering.load(Ordering::SeqCst) == 0 {
        relay.lingering.fetch_add(1, Ordering::SeqCst);
        let r = Arc::clone(relay);
        rayon::spawn(move || r.linger());
    }
    let start = Instant::now();
    let mine = catch_unwind(AssertUnwindSafe(mine));
    if relay
        .slot
        .compare_exchange(
            ptr,
            core::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        // Not claimed while `mine` ran: run it here.
        // SAFETY: taken back out of the slot, so no other thread can claim it any more.
        unsafe { Task::run_claimed(ptr) };
    } else {
        // Claimed: wait without sleeping while the other part should still be running, about
        // as long as `mine` took; a parked caller would add a wake-up (several microseconds on
        // the VMs measured, see `run_spinning` in private.rs) to every call. So spin for twice
        // that time, then yield (which leaves the core to any thread that needs it), and park
        // only once the wait is long against the pass.
        let own = start.elapsed();
        let wait = Instant::now();
        let mut spins = 0u32;
        while !task.done.load(Ordering::Acquire) {
            let waited = wait.elapsed();
            if waited < own * 2 {
                spins = spins.wrapping_add(1);
                snooze(spins, false);
            } else if waited < own * 8 + YIELD_FOR {
                thread::yield_now();
            } else {
                thread::park_timeout(Duration::from_millis(1));
            }
        }
    }
    // `done` was set with Release after the claimer's last access: the task is ours again.
    let theirs = task.panic.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Err(p) = mine {
        resume_unwind(p);
    }
    if let Some(p) = theirs {
        resume_unwind(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_closures_run_once_from_outside_and_inside_pools() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for round in 0..200 {
            let (a, b) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let run = || {
                join(
                    || {
                        a.fetch_add(1, Ordering::SeqCst);
                    },
                    || {
                        b.fetch_add(1, Ordering::SeqCst);
                    },
                )
            };
            if round % 2 == 0 {
                run();
            } else {
                pool.install(run);
            }
            assert_eq!((a.into_inner(), b.into_inner()), (1, 1), "round {round}");
        }
    }

    #[test]
    fn an_offer_runs_on_another_thread_when_a_worker_is_free() {
        // The offer goes to a worker of the global pool unless `mine` ends first: make it
        // wait for the claim.
        let me = thread::current().id();
        let ran_on = Mutex::new(None);
        let claimed = AtomicBool::new(false);
        join(
            || {
                let t = Instant::now();
                while !claimed.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(5) {
                    thread::yield_now();
                }
            },
            || {
                claimed.store(true, Ordering::SeqCst);
                *ran_on.lock().unwrap() = Some(thread::current().id());
            },
        );
        let on = ran_on.into_inner().unwrap();
        assert!(
            on.is_some() && on != Some(me),
            "ran on {on:?}, caller {me:?}"
        );
    }

    #[test]
    fn panics_in_either_part_reach_the_caller_after_both_ran() {
        for panicking in [0, 1] {
            let other = AtomicBool::new(false);
            let r = catch_unwind(AssertUnwindSafe(|| {
                join(
                    || {
                        if panicking == 0 {
                            panic!("mine");
                        }
                        other.store(true, Ordering::SeqCst);
                    },
                    || {
                        if panicking == 1 {
                            panic!("theirs");
                        }
                        other.store(true, Ordering::SeqCst);
                    },
                )
            }));
            assert!(r.is_err(), "panic in part {panicking} was lost");
            assert!(
                other.load(Ordering::SeqCst),
                "part {} did not run",
                1 - panicking
            );
        }
    }

    #[test]
    fn nested_and_concurrent_joins_complete() {
        let total = AtomicUsize::new(0);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        join(
                            || {
                                join(
                                    || {
                                        total.fetch_add(1, Ordering::SeqCst);
                                    },
                                    || {
                                        total.fetch_add(1, Ordering::SeqCst);
                                    },
                                )
                            },
                            || {
                                total.fetch_add(1, Ordering::SeqCst);
                            },
                        )
                    }
                });
            }
        });
        assert_eq!(total.into_inner(), 4 * 100 * 3);
    }
}
