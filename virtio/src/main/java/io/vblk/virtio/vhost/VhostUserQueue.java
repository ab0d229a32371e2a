package io.vblk.virtio.vhost;

import io.vblk.aio.Native;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;

/**
 * One vring as the front-end configured it: size, ring addresses (front-end virtual, and the host
 * addresses they translate to at start), base index, kick/call/err eventfds, enabled/started
 * state, and the inflight tracking view. libvhost-user's VuVirtq. The protocol handler owns and
 * mutates it on the connection thread while the queue is stopped; the device reads it after
 * {@link VhostUserBackend#startQueue}.
 */
public final class VhostUserQueue {
    private final int index;

    // configured by messages; connection thread only, read by the device between start and stop
    int size;
    long descUva, availUva, usedUva;
    boolean addrSet;
    int lastAvailIdx;
    int kickFd = -1;
    int errFd = -1;
    boolean enabled;
    boolean started;   // SET_VRING_KICK seen and no GET_VRING_BASE since
    boolean running;   // the backend was told to start and not yet to stop

    // resolved at start
    long descHost, availHost, usedHost;
    GuestMemoryTable memory = GuestMemoryTable.EMPTY;
    InflightRegion.Queue inflight;

    /** Guarded by {@code callLock}: the fd may be replaced by SET_VRING_CALL while the device signals. */
    private int callFd = -1;
    private final Object callLock = new Object();
    private final NativeBuffer one = NativeBuffer.allocate(8, 8);

    VhostUserQueue(int index) {
        this.index = index;
        NativeMemory.putLongLE(one.address(), 1);
    }

    public int index() { return index; }
    public int size() { return size; }
    public long descAddr() { return descHost; }
    public long availAddr() { return availHost; }
    public long usedAddr() { return usedHost; }
    /** The avail index to continue from (SET_VRING_BASE, or the inflight recovery point). */
    public int lastAvailIdx() { return lastAvailIdx; }
    public int kickFd() { return kickFd; }
    public GuestMemoryTable memory() { return memory; }
    /** Inflight tracking for this queue, or null when the front-end did not set it up. */
    public InflightRegion.Queue inflight() { return inflight; }

    /** Signals the used ring to the front-end (eventfd write on the call fd). Any thread. */
    public void signalCall() {
        synchronized (callLock) {
            if (callFd >= 0) Native.LIBC.write(callFd, one.address(), 8);
        }
    }

    void setCallFd(int fd) {
        synchronized (callLock) {
            if (callFd >= 0) Native.LIBC.close(callFd);
            callFd = fd;
        }
    }

    int callFd() { synchronized (callLock) { return callFd; } }

    void setKickFd(int fd) {
        if (kickFd >= 0) Native.LIBC.close(kickFd);
        kickFd = fd;
    }

    void setErrFd(int fd) {
        if (errFd >= 0) Native.LIBC.close(errFd);
        errFd = fd;
    }

    /** Back to the state of a fresh connection; closes the fds. */
    void reset() {
        setKickFd(-1);
        setErrFd(-1);
        setCallFd(-1);
        size = 0;
        addrSet = false;
        lastAvailIdx = 0;
        enabled = false;
        started = false;
        running = false;
        inflight = null;
        memory = GuestMemoryTable.EMPTY;
    }

    void free() {
        reset();
        one.close();
    }

    @Override
    public String toString() {
        return "vq" + index + "[size " + size + " base " + lastAvailIdx + (enabled ? " enabled" : "") + (started ? " started" : "") + "]";
    }
}
