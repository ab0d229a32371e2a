package io.vblk.block;

import java.util.concurrent.locks.LockSupport;

/** A {@link Poller} without file descriptors: the loop parks its thread until woken. */
public final class ParkingPoller implements Poller {
    private volatile Thread owner;
    private volatile boolean woken;

    @Override
    public void register(int fd, Runnable onReadable) {
        throw new UnsupportedOperationException("ParkingPoller cannot watch file descriptors; use an epoll poller");
    }

    @Override
    public void unregister(int fd) {
        throw new UnsupportedOperationException("ParkingPoller cannot watch file descriptors");
    }

    @Override
    public boolean supportsFds() {
        return false;
    }

    @Override
    public void poll(long timeoutNanos) {
        owner = Thread.currentThread();
        if (woken) {
            woken = false;
            return;
        }
        if (timeoutNanos < 0) {
            LockSupport.park(this);
        } else if (timeoutNanos > 0) {
            LockSupport.parkNanos(this, timeoutNanos);
        }
        woken = false;
    }

    @Override
    public void wakeup() {
        woken = true;
        Thread t = owner;
        if (t != null) {
            LockSupport.unpark(t);
        }
    }

    @Override
    public void close() {}
}
