package io.vblk.block;

import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Waiters for a condition on a node (drain: "requests in flight", quiesce: "node is drained",
 * flush: "another flush is active"): QEMU's BDRV_POLL_WHILE / CoQueue waits, for callers that are
 * either coroutines (they park, the I/O thread keeps running) or plain threads (they block on
 * {@link LockSupport#park}; tools and tests outside any context).
 *
 * <p>No lost wake-ups: a waiter checks the condition under {@link #lock} before it queues, and a
 * waker changes the state before it takes {@link #lock} to empty the queue; both park primitives
 * keep a wake that arrives before the park. Slow path only: nobody waits in the steady state.
 */
final class WaitList {
    /** A condition over a node, evaluated by the waiter under the list's lock. Non-capturing. */
    interface Cond {
        boolean holds(BlockNode node);
    }

    private final ReentrantLock lock = new ReentrantLock();
    private Object[] waiters = new Object[4];   // Coroutine or Thread; guarded by lock
    private int count;                          // guarded by lock

    /** Waits (parking the coroutine or blocking the thread) while {@code cond} holds for {@code node}. */
    void awaitWhile(BlockNode node, Cond cond) {
        Coroutine co = Coroutine.current();
        Object me = co != null ? co : Thread.currentThread();
        for (;;) {
            lock.lock();
            try {
                if (!cond.holds(node)) {
                    remove(me);
                    return;
                }
                if (!contains(me)) {
                    add(me);
                }
            } finally {
                lock.unlock();
            }
            if (co != null) {
                Coroutine.park();
            } else {
                LockSupport.park(this);
            }
        }
    }

    /** Wakes every waiter; each re-checks its condition. Any thread; never parks. */
    void wakeAll() {
        lock.lock();
        try {
            for (int i = 0; i < count; i++) {
                wake(waiters[i]);
                waiters[i] = null;
            }
            count = 0;
        } finally {
            lock.unlock();
        }
    }

    /** True if someone waits (for tests and asserts). */
    boolean hasWaiters() {
        lock.lock();
        try {
            return count > 0;
        } finally {
            lock.unlock();
        }
    }

    static void wake(Object w) {
        if (w instanceof Coroutine c) {
            c.wake();
        } else {
            LockSupport.unpark((Thread) w);
        }
    }

    private boolean contains(Object w) {
        for (int i = 0; i < count; i++) {
            if (waiters[i] == w) return true;
        }
        return false;
    }

    private void add(Object w) {
        if (count == waiters.length) {
            waiters = java.util.Arrays.copyOf(waiters, count * 2);
        }
        waiters[count++] = w;
    }

    private void remove(Object w) {
        for (int i = 0; i < count; i++) {
            if (waiters[i] == w) {
                waiters[i] = waiters[--count];
                waiters[count] = null;
                return;
            }
        }
    }
}
