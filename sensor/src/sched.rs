//! Short scheduler slices for the live sensor's threads (Linux 6.12 or later).
//!
//! **Why.** An alert waits for the pipeline's threads to wake (source reader, table
//! thread, writer), and on a busy host each wake-up waits for a CPU: the kernel's
//! scheduler (EEVDF) lets the task running there finish its slice, about 3 ms, before a
//! woken thread with the default slice gets its turn. Measured on a 2-core VM with the
//! CPUs 90 % busy, almost all of the sensor's alert latency beyond its median was this
//! wait, between the table thread sending an alert and the writer receiving it. A
//! thread that asks for a short slice (the shortest the kernel allows, 0.1 ms) gets an
//! earlier deadline and preempts the running task when it wakes: the sensor's threads
//! run briefly and sleep again, which is what such slices are for.
//!
//! The request is made by the thread that starts the live sensor, before it starts the
//! others: threads inherit it. Older kernels ignore it (or refuse it, also ignored):
//! the sensor only waits longer there.

/// The slice asked for, in nanoseconds: the kernel's minimum.
pub const SHORT_SLICE_NS: u64 = 100_000;

/// Asks for [`SHORT_SLICE_NS`] for the calling thread and the threads it starts later,
/// keeping its policy and nice value; a real-time policy (chrt) is left alone.
pub fn prefer_short_slices() {
    let Some(mut attr) = current() else { return };
    let fair = [libc::SCHED_OTHER, libc::SCHED_BATCH, libc::SCHED_IDLE];
    if !fair.contains(&(attr.sched_policy as i32)) {
        return;
    }
    attr.sched_flags = 0;
    attr.sched_runtime = SHORT_SLICE_NS;
    // SAFETY: a valid sched_attr of the size it says, for the calling thread (tid 0).
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr, 0) };
}

/// The calling thread's scheduling attributes (on Linux 6.12 or later, `sched_runtime`
/// is its slice).
pub fn current() -> Option<libc::sched_attr> {
    let size = std::mem::size_of::<libc::sched_attr>();
    let mut attr = libc::sched_attr {
        size: 0,
        sched_policy: 0,
        sched_flags: 0,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: 0,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: the kernel writes at most `size` bytes into `attr`.
    let done = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr, size as u32, 0) };
    (done == 0).then_some(attr)
}
