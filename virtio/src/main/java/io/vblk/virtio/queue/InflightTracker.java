package io.vblk.virtio.queue;

/**
 * Optional bookkeeping of which descriptor heads the device holds, kept outside the device so a
 * restarted device can finish them: the seam behind vhost-user INFLIGHT_SHMFD (libvhost-user's
 * vu_queue_inflight_get / pre_put / post_put and vu_check_queue_inflights). A {@link VirtQueue}
 * has none by default, and then pays one null check per pop and per push.
 *
 * <p>All calls come from the queue's thread, in ring order:
 * <ul>
 * <li>{@link #recoverHeads} once at {@link VirtQueue#activate()}, with the used index read from the
 *     ring, before anything is popped;</li>
 * <li>{@link #begin} for every head popped from the avail ring (not for resubmitted heads, which
 *     keep their place);</li>
 * <li>{@link #prePut} before the used element is written, {@link #postPut} after used.idx has
 *     been stored (with a store-store fence between that store and the call), once per element,
 *     in publication order.</li>
 * </ul>
 */
public interface InflightTracker {
    /**
     * Repairs the record against the ring's used index and returns the heads still in flight,
     * oldest first; the queue resumes popping the avail ring at {@code ringUsedIdx + heads.length}.
     */
    int[] recoverHeads(int ringUsedIdx);

    /** {@code head} was popped from the avail ring. */
    void begin(int head);

    /** {@code head} is about to be written to the used ring. */
    void prePut(int head);

    /** {@code head} is visible in the used ring, whose index is now {@code usedIdx}. */
    void postPut(int head, int usedIdx);
}
