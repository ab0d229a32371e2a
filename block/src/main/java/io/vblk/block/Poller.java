package io.vblk.block;

/**
 * What an {@link AioContext} waits on between bursts of work: file descriptors (eventfds of the
 * AIO engine and of virtqueue kicks) plus a cross-thread wakeup. The block module ships
 * {@link ParkingPoller}, which has no fds; the aio module ships an epoll poller.
 */
public interface Poller extends AutoCloseable {
    /** Calls {@code onReadable} on the context thread whenever {@code fd} is readable. Context thread only. */
    void register(int fd, Runnable onReadable);

    /** Stops watching {@code fd}. Context thread only. */
    void unregister(int fd);

    /** True if this poller can watch file descriptors. */
    boolean supportsFds();

    /**
     * Waits up to {@code timeoutNanos} (negative: forever; 0: do not block) for a registered fd to
     * become readable or for {@link #wakeup()}, and runs the handlers of ready fds. Context thread only.
     */
    void poll(long timeoutNanos);

    /** Makes a current or the next {@link #poll} return promptly. Any thread. */
    void wakeup();

    @Override
    void close();
}
