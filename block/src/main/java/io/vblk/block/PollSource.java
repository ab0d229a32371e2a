package io.vblk.block;

/**
 * Something an {@link AioContext} can busy-poll before it blocks: QEMU's io_poll /
 * io_poll_ready / io_poll_begin / io_poll_end handlers of an AioHandler. A virtqueue polls its
 * avail index, the Linux AIO engine its completion ring. All methods run on the context thread
 * and must not allocate: {@link #poll} runs in a spin loop.
 */
public interface PollSource {
    /** A cheap check: true if {@link #run} has work to do now. */
    boolean poll();

    /** Handles the work {@link #poll} saw (inside a deferred-call section). */
    void run();

    /** The context starts busy-polling: the source may stop asking for notifications (kicks). */
    default void pollBegin() {}

    /**
     * The context stops busy-polling and will block: the source asks for notifications again. The
     * context calls {@link #poll} once more afterwards, so work that arrived in between is not lost.
     */
    default void pollEnd() {}
}
