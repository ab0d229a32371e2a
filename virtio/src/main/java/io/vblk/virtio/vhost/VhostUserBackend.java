package io.vblk.virtio.vhost;

/**
 * What the vhost-user protocol handler needs from a device: its feature bits, queue count,
 * configuration space, and queue start/stop. The virtio-blk device implements it; unit tests use
 * a recording fake. Every method is called on the connection thread, one at a time.
 *
 * <p>Contract for queues: between {@link #startQueue} and the return of {@link #stopQueue} the
 * device may read and write guest memory through {@link VhostUserQueue#memory()} and the ring
 * addresses of the queue, watch {@link VhostUserQueue#kickFd()} and signal
 * {@link VhostUserQueue#signalCall()}. After {@code stopQueue} returns it must do none of that for
 * this queue (QEMU's vhost-user-blk-server vu_blk_queue_set_started / libvhost-user vu_queue_*).
 */
public interface VhostUserBackend {
    /** Virtio device features offered (VERSION_1, ring and device bits); the server adds bit 30. */
    long deviceFeatures();

    /** Number of request queues the device supports (GET_QUEUE_NUM). */
    int numQueues();

    /** The current configuration space (e.g. the 60-byte virtio_blk_config). */
    byte[] readConfig();

    /** A front-end config write (SET_CONFIG); true when accepted. Only writable fields may change. */
    boolean writeConfig(int offset, byte[] data);

    /** The features the front-end acknowledged (SET_FEATURES), without bit 30. */
    void setFeatures(long features);

    /**
     * The ring is started and enabled: begin processing. Returns null, or why the ring cannot be
     * used (the connection then fails with a protocol error).
     */
    String startQueue(VhostUserQueue queue);

    /** Stop processing, wait for requests in flight to complete, and return the next avail index. */
    int stopQueue(VhostUserQueue queue);

    /** The server calls this to reach the front-end with a config-change notice (resize). */
    default void setConfigChangeNotifier(Runnable notifier) {}

    /** The connection ended or the front-end reset the device; all queues are stopped already. */
    default void reset() {}

    /**
     * ADD_MEM_REG while a ring runs (memory hotplug): the region is mapped and already in every
     * running queue's table; the device must be able to reach it from now on without a restart.
     * Called on the connection thread.
     */
    default void memoryRegionAdded(GuestMemoryTable.Region region) {}
}
