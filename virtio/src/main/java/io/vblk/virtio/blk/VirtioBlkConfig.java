package io.vblk.virtio.blk;

/**
 * Embedder-chosen properties of a virtio-blk device (QEMU's -device virtio-blk properties):
 * queues, sizes, serial, error and malformed-chain policies. Mutable; read once by the device's
 * constructor.
 */
public final class VirtioBlkConfig {
    /** Number of request queues (num-queues); MQ is offered when more than one. */
    public int numQueues = 1;
    /** Maximum queue size (queue-size); a power of two <= 32768. */
    public int queueSize = 256;
    /** GET_ID answer, at most 20 bytes used. */
    public String serial = "vblk";
    /** Offer RO even if the node is writable. */
    public boolean readOnly;
    /** logical_block_size (blk_size); a power of two >= 512. */
    public int logicalBlockSize = 512;
    /** physical_block_size; a power-of-two multiple of the logical size. */
    public int physicalBlockSize = 4096;
    /** size_max in bytes; 0 = do not offer SIZE_MAX. */
    public int sizeMax;
    /** seg_max; 0 = queue size - 2 (QEMU's seg-max-adjust). */
    public int segMax;
    public boolean discard = true;
    public boolean writeZeroes = true;
    /** Segments accepted per DISCARD / WRITE_ZEROES request. */
    public int maxDiscardSeg = 32;
    public int maxWriteZeroesSeg = 32;
    /** Offer CONFIG_WCE (writeback in config space is writable). */
    public boolean configWce = true;
    public boolean indirectDesc = true;
    public boolean eventIdx = true;
    /** Merge adjacent requests of one kick (QEMU's request-merging). */
    public boolean requestMerging = true;
    /**
     * Start reads and writes that the block node can take without a coroutine
     * ({@link io.vblk.block.BlockNode#startRw}: aligned, raw over file with Linux AIO) straight
     * from the queue pass, completing them from the AIO completion. The others, and all requests
     * when this is off, run in a coroutine each, as in QEMU. On by default: it saves a coroutine
     * start and switch per request and changes nothing the guest sees.
     */
    public boolean directRw = true;
    /**
     * Interrupt coalescing, off (0) by default as in QEMU; NVMe's Interrupt Coalescing feature is
     * the model. While other requests of a queue are still in flight, the interrupt for completed
     * ones is held for up to this many nanoseconds, or until {@link #irqCoalesceMax} completions
     * wait for it. The used ring is written at once: only the signal waits. When the queue has
     * nothing left in flight the interrupt goes at once.
     */
    public long irqCoalesceNs;
    /** Completions that end an interrupt-coalescing window early. */
    public int irqCoalesceMax = 32;
    /**
     * Kick holding, off (0) by default. While a queue has requests in flight the device leaves the
     * driver's notifications off (EVENT_IDX's avail_event is not advanced, or NO_NOTIFY stays set)
     * and looks at the avail ring itself whenever completions arrive, so a driver that adds
     * requests one at a time does not exit to notify for each. A request added while kicks are
     * held waits for the next completion, or at most this many nanoseconds, after which
     * notifications are turned back on. When nothing is in flight they are on as usual.
     */
    public long kickHoldNs;
    /**
     * Kicks are held only while at least this many requests of the queue are in flight (1: while
     * any is). Below it notifications are on as without holding, so a driver at a lower queue
     * depth never waits for a completion to have its request seen.
     */
    public int kickHoldDepth = 1;
    public ErrorPolicy rerror = ErrorPolicy.REPORT;
    public ErrorPolicy werror = ErrorPolicy.ENOSPC;
    public MalformedChainPolicy malformedChains = MalformedChainPolicy.NEEDS_RESET;

    public VirtioBlkConfig numQueues(int n) { numQueues = n; return this; }
    public VirtioBlkConfig queueSize(int n) { queueSize = n; return this; }
    public VirtioBlkConfig serial(String s) { serial = s; return this; }
    public VirtioBlkConfig readOnly(boolean ro) { readOnly = ro; return this; }
    public VirtioBlkConfig rerror(ErrorPolicy p) { rerror = p; return this; }
    public VirtioBlkConfig werror(ErrorPolicy p) { werror = p; return this; }
    public VirtioBlkConfig irqCoalesce(long ns, int max) { irqCoalesceNs = ns; irqCoalesceMax = max; return this; }
    public VirtioBlkConfig kickHold(long ns) { kickHoldNs = ns; return this; }
    public VirtioBlkConfig kickHold(long ns, int depth) { kickHoldNs = ns; kickHoldDepth = depth; return this; }
    public VirtioBlkConfig malformedChains(MalformedChainPolicy p) { malformedChains = p; return this; }
}
