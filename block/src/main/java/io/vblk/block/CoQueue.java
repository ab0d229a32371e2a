package io.vblk.block;

import java.util.ArrayDeque;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A queue of parked coroutines: QEMU's CoQueue. Safe across contexts: the waiter list is guarded by
 * a short internal lock that is never held while parked.
 */
public final class CoQueue {
    private final ReentrantLock lock = new ReentrantLock();
    private final ArrayDeque<Coroutine> waiters = new ArrayDeque<>(); // guarded by lock

    /**
     * Parks the current coroutine until woken by {@link #wakeNext()} or {@link #wakeAll()}
     * (qemu_co_queue_wait). If {@code mutex} is given it is released while parked and taken again
     * before returning.
     */
    public void await(CoMutex mutex) {
        Coroutine me = Coroutine.current();
        if (me == null) {
            throw new IllegalStateException("CoQueue.await outside a coroutine");
        }
        lock.lock();
        try {
            waiters.addLast(me);
        } finally {
            lock.unlock();
        }
        if (mutex != null) {
            mutex.unlock();
        }
        boolean stillQueued;
        do {
            Coroutine.park();
            lock.lock();
            try {
                stillQueued = waiters.contains(me);
            } finally {
                lock.unlock();
            }
        } while (stillQueued);
        if (mutex != null) {
            mutex.lock();
        }
    }

    public void await() {
        await(null);
    }

    /** Wakes the first waiter; returns false if there was none (qemu_co_queue_next). */
    public boolean wakeNext() {
        Coroutine co;
        lock.lock();
        try {
            co = waiters.pollFirst();
        } finally {
            lock.unlock();
        }
        if (co == null) {
            return false;
        }
        co.wake();
        return true;
    }

    /** Wakes every waiter (qemu_co_queue_restart_all). */
    public void wakeAll() {
        while (wakeNext()) {
            // keep going
        }
    }

    public boolean isEmpty() {
        lock.lock();
        try {
            return waiters.isEmpty();
        } finally {
            lock.unlock();
        }
    }
}
