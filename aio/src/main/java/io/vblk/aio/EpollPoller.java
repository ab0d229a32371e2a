package io.vblk.aio;

import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.block.Poller;
import java.util.Arrays;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The {@link Poller} of an I/O thread that watches file descriptors: one epoll instance plus an
 * {@link EventFd} for cross-thread wakeup. QEMU's fdmon-epoll with aio_notify. Level-triggered;
 * handlers run on the context thread inside {@link #poll} and must consume their fd's readiness
 * (for an eventfd: read it).
 *
 * <p>The fd-to-handler table is an array indexed by fd, so a ready event costs no allocation.
 */
public final class EpollPoller implements Poller {
    private static final Logger LOG = Logger.getLogger(EpollPoller.class.getName());
    private static final int MAX_READY = 64;

    private final int epfd;
    private final EventFd wake;
    private final NativeBuffer events = NativeBuffer.allocate((long) MAX_READY * LinuxConstants.EPOLL_EVENT_SIZE, 16); // context thread
    private final NativeBuffer ctlEvent = NativeBuffer.allocate(16, 16);                                          // context thread
    private final NativeBuffer timespec = NativeBuffer.allocate(16, 8);                                           // context thread
    private static volatile boolean pwait2 = true;  // cleared when the kernel answers ENOSYS (before 5.11)
    private long preciseWaits;                      // context thread: waits with a sub-millisecond timeout
    private Runnable[] handlers = new Runnable[64];                                                                // context thread
    private boolean closed;

    public EpollPoller() throws BlockException {
        long r = Native.LIBC.epoll_create1(LinuxConstants.EPOLL_CLOEXEC);
        if (r == -1) {
            int e = Native.errno();
            events.close();
            ctlEvent.close();
            throw new BlockException(e, "epoll_create1: " + Errno.describe(e));
        }
        epfd = (int) r;
        EventFd w;
        try {
            w = new EventFd();
        } catch (BlockException e) {
            Native.LIBC.close(epfd);
            events.close();
            ctlEvent.close();
            throw e;
        }
        wake = w;
        int rc = ctl(LinuxConstants.EPOLL_CTL_ADD, wake.fd());
        if (rc < 0) {
            close();
            throw new BlockException(-rc, "epoll_ctl(ADD eventfd): " + Errno.describe(-rc));
        }
    }

    private int ctl(int op, int fd) {
        long a = ctlEvent.address();
        NativeMemory.putIntLE(a, LinuxConstants.EPOLLIN);
        NativeMemory.putLongLE(a + LinuxConstants.EPOLL_EVENT_DATA_OFFSET, fd);
        return (int) Native.ret(Native.LIBC.epoll_ctl(epfd, op, fd, a));
    }

    @Override
    public void register(int fd, Runnable onReadable) {
        if (fd < 0) {
            throw new IllegalArgumentException("fd " + fd);
        }
        if (fd >= handlers.length) {
            handlers = Arrays.copyOf(handlers, Math.max(fd + 1, handlers.length * 2));
        }
        boolean had = handlers[fd] != null;
        int rc = ctl(had ? LinuxConstants.EPOLL_CTL_MOD : LinuxConstants.EPOLL_CTL_ADD, fd);
        if (rc < 0) {
            throw new IllegalStateException("epoll_ctl(" + fd + "): " + Errno.describe(-rc));
        }
        handlers[fd] = onReadable;
    }

    @Override
    public void unregister(int fd) {
        if (fd >= 0 && fd < handlers.length && handlers[fd] != null) {
            handlers[fd] = null;
            ctl(LinuxConstants.EPOLL_CTL_DEL, fd);
        }
    }

    @Override
    public boolean supportsFds() {
        return true;
    }

    /**
     * Waits for events up to {@code timeoutNanos} (-1: forever, 0: not at all). A timeout that is
     * not a whole number of milliseconds is waited for with {@code epoll_pwait2}, which takes a
     * timespec, as QEMU's ppoll-based loop does; {@code epoll_wait} would round it up to the next
     * millisecond, so a 100 µs timer (null's {@code latency-ns}) would fire after 1 ms. Kernels
     * before 5.11 fall back to that rounding.
     */
    @Override
    public void poll(long timeoutNanos) {
        long base = events.address();
        int n = Integer.MIN_VALUE;
        if (timeoutNanos > 0 && timeoutNanos % 1_000_000 != 0 && pwait2) {
            n = waitPrecise(base, timeoutNanos);
        }
        if (n == Integer.MIN_VALUE) {
            int ms = timeoutNanos < 0 ? -1 : (int) Math.min(Integer.MAX_VALUE, (timeoutNanos + 999_999) / 1_000_000);
            n = Native.LIBC.epoll_wait(epfd, base, MAX_READY, ms);
        }
        for (int i = 0; i < n; i++) {
            long ev = base + (long) i * LinuxConstants.EPOLL_EVENT_SIZE;
            int fd = (int) NativeMemory.getLongLE(ev + LinuxConstants.EPOLL_EVENT_DATA_OFFSET);
            if (fd == wake.fd()) {
                wake.drain();
                continue;
            }
            Runnable h = fd < handlers.length ? handlers[fd] : null;
            if (h != null) {
                try {
                    h.run();
                } catch (RuntimeException | Error e) {
                    // one broken handler must not take the I/O thread down
                    LOG.log(Level.SEVERE, "fd " + fd + " handler failed", e);
                }
            }
        }
    }

    /** epoll_pwait2 with a nanosecond timeout; Integer.MIN_VALUE if the kernel lacks it. */
    private int waitPrecise(long base, long timeoutNanos) {
        long ts = timespec.address();
        NativeMemory.putLongLE(ts, timeoutNanos / 1_000_000_000L);
        NativeMemory.putLongLE(ts + 8, timeoutNanos % 1_000_000_000L);
        // all six arguments (sigmask NULL, sigsetsize 8) through a fixed-signature stub (no boxing)
        long r = HotSyscalls.INSTANCE.syscall(Syscalls.EPOLL_PWAIT2, epfd, base, MAX_READY, ts, 0, 8);
        if (r == -1 && Native.errno() == Errno.ENOSYS) {
            pwait2 = false;
            return Integer.MIN_VALUE;
        }
        preciseWaits++;
        return (int) r;
    }

    /** Waits that used a sub-millisecond timeout (epoll_pwait2). Context thread (or racy read). */
    public long preciseWaits() {
        return preciseWaits;
    }

    @Override
    public void wakeup() {
        wake.signal();
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        wake.close();
        Native.LIBC.close(epfd);
        events.close();
        ctlEvent.close();
        timespec.close();
    }
}
