package io.vblk.aio;

import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import java.io.UncheckedIOException;

/** Starts I/O threads whose event loop waits in epoll, so the Linux AIO engine can attach to them (iothread_new). */
public final class IoThreads {
    private IoThreads() {}

    /** A new {@link AioContext} polled by an {@link EpollPoller}. */
    public static AioContext start(String name) {
        try {
            return AioContext.start(name, new EpollPoller());
        } catch (BlockException e) {
            throw new UncheckedIOException(e);
        }
    }
}
