package io.vblk.aio;

import io.vblk.block.BlockException;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;

/**
 * A non-blocking eventfd: QEMU's EventNotifier. {@link #signal()} adds one to the counter from any
 * thread; {@link #drain()} reads and clears it on the owning thread (event_notifier_test_and_clear).
 * Used as the wakeup of {@link EpollPoller} and as the completion notifier of {@link LinuxAio}.
 */
public final class EventFd implements AutoCloseable {
    private final int fd;
    private final NativeBuffer readBuf = NativeBuffer.allocate(8, 8);  // owner thread only
    private final NativeBuffer one = NativeBuffer.allocate(8, 8);      // constant 1, any thread reads it
    private volatile boolean closed;

    public EventFd() throws BlockException {
        long r = Native.LIBC.syscall(Syscalls.EVENTFD2, 0, LinuxConstants.EFD_NONBLOCK | LinuxConstants.EFD_CLOEXEC);
        if (r == -1) {
            int e = Native.errno();
            readBuf.close();
            one.close();
            throw new BlockException(e, "eventfd2: " + io.vblk.block.Errno.describe(e));
        }
        fd = (int) r;
        NativeMemory.putLongLE(one.address(), 1);
    }

    public int fd() {
        return fd;
    }

    /** Adds one to the counter, making the fd readable. Any thread. */
    public void signal() {
        if (!closed) {
            Native.LIBC.write(fd, one.address(), 8);
        }
    }

    /** Reads and clears the counter; returns it, or 0 if it was already 0. Owner thread. */
    public long drain() {
        long r = Native.LIBC.read(fd, readBuf.address(), 8);
        return r == 8 ? NativeMemory.getLongLE(readBuf.address()) : 0;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        Native.LIBC.close(fd);
        readBuf.close();
        one.close();
    }
}
