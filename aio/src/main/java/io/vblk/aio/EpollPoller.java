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

    @Override
    public void poll(long timeoutNanos) {
        int ms;
        if (timeoutNanos < 0) {
            ms = -1;
        } else if (timeoutNanos == 0) {
            ms = 0;
        } else {
            ms = (int) Math.min(Integer.MAX_VALUE, (timeoutNanos + 999_999) / 1_000_000);
        }
        long base = events.address();
        int n = Native.LIBC.epoll_wait(epfd, base, MAX_READY, ms);
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
    }
}
