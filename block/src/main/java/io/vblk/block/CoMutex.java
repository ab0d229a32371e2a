package io.vblk.block;

import java.util.ArrayDeque;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A mutex for coroutines: QEMU's CoMutex. A contended {@link #lock()} parks the coroutine instead
 * of blocking the I/O thread; {@link #unlock()} hands ownership straight to the first waiter (FIFO).
 * Not reentrant. Safe across contexts.
 */
public final class CoMutex {
    private final ReentrantLock guard = new ReentrantLock();
    private final ArrayDeque<Coroutine> waiters = new ArrayDeque<>(); // guarded by guard
    private Coroutine owner;                                          // guarded by guard

    public void lock() {
        Coroutine me = Coroutine.current();
        if (me == null) {
            throw new IllegalStateException("CoMutex.lock outside a coroutine");
        }
        guard.lock();
        try {
            if (owner == null) {
                owner = me;
                return;
            }
            if (owner == me) {
                throw new IllegalStateException("CoMutex is not reentrant");
            }
            waiters.addLast(me);
        } finally {
            guard.unlock();
        }
        for (;;) {
            Coroutine.park();
            guard.lock();
            try {
                if (owner == me) {
                    return;
                }
            } finally {
                guard.unlock();
            }
        }
    }

    /** Takes the lock if free; never parks. */
    public boolean tryLock() {
        Coroutine me = Coroutine.current();
        guard.lock();
        try {
            if (owner == null) {
                owner = me;
                return true;
            }
            return false;
        } finally {
            guard.unlock();
        }
    }

    public void unlock() {
        Coroutine next;
        guard.lock();
        try {
            if (owner == null) {
                throw new IllegalStateException("CoMutex.unlock of an unlocked mutex");
            }
            next = waiters.pollFirst();
            owner = next;
        } finally {
            guard.unlock();
        }
        if (next != null) {
            next.wake();
        }
    }

    public boolean isLocked() {
        guard.lock();
        try {
            return owner != null;
        } finally {
            guard.unlock();
        }
    }

    /** True if the current coroutine holds the lock. */
    public boolean heldByCurrent() {
        Coroutine me = Coroutine.current();
        guard.lock();
        try {
            return me != null && owner == me;
        } finally {
            guard.unlock();
        }
    }
}
