package io.vblk.virtio;

/**
 * Constants of the virtio 1.x specification used by this module, with the spec's own names
 * (transport feature bits, device status bits, split-ring layout, virtio-blk). One place, so that
 * every other class reads as the spec does. Values from research/virtio-and-vhost-user.md section 2.
 */
public final class VirtioSpec {
    private VirtioSpec() {}

    // ---- transport feature bits
    public static final int F_NOTIFY_ON_EMPTY = 24;
    public static final int F_ANY_LAYOUT = 27;
    public static final int F_INDIRECT_DESC = 28;
    public static final int F_EVENT_IDX = 29;
    public static final int F_VERSION_1 = 32;
    public static final int F_ACCESS_PLATFORM = 33;
    public static final int F_RING_PACKED = 34;
    public static final int F_IN_ORDER = 35;

    // ---- device status bits
    public static final int S_ACKNOWLEDGE = 1;
    public static final int S_DRIVER = 2;
    public static final int S_DRIVER_OK = 4;
    public static final int S_FEATURES_OK = 8;
    public static final int S_DEVICE_NEEDS_RESET = 64;
    public static final int S_FAILED = 128;

    // ---- split virtqueue
    public static final int MAX_QUEUE_SIZE = 32768;
    public static final int DESC_SIZE = 16;
    public static final int VIRTQ_DESC_F_NEXT = 1;
    public static final int VIRTQ_DESC_F_WRITE = 2;
    public static final int VIRTQ_DESC_F_INDIRECT = 4;
    public static final int VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
    public static final int VIRTQ_USED_F_NO_NOTIFY = 1;
    public static final int USED_ELEM_SIZE = 8;

    /** Bytes of the descriptor table for {@code n} entries. */
    public static long descTableSize(int n) { return 16L * n; }
    /** Bytes of the avail ring including used_event. */
    public static long availRingSize(int n) { return 6L + 2L * n; }
    /** Bytes of the used ring including avail_event. */
    public static long usedRingSize(int n) { return 6L + 8L * n; }

    /** vring_need_event: notify if the other side asked for an event in (old, new]. */
    public static boolean needEvent(int eventIdx, int newIdx, int oldIdx) {
        return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }

    // ---- virtio-blk (device id 2)
    public static final int VIRTIO_ID_BLOCK = 2;
    public static final int VIRTIO_BLK_F_SIZE_MAX = 1;
    public static final int VIRTIO_BLK_F_SEG_MAX = 2;
    public static final int VIRTIO_BLK_F_GEOMETRY = 4;
    public static final int VIRTIO_BLK_F_RO = 5;
    public static final int VIRTIO_BLK_F_BLK_SIZE = 6;
    public static final int VIRTIO_BLK_F_FLUSH = 9;
    public static final int VIRTIO_BLK_F_TOPOLOGY = 10;
    public static final int VIRTIO_BLK_F_CONFIG_WCE = 11;
    public static final int VIRTIO_BLK_F_MQ = 12;
    public static final int VIRTIO_BLK_F_DISCARD = 13;
    public static final int VIRTIO_BLK_F_WRITE_ZEROES = 14;

    public static final int VIRTIO_BLK_T_IN = 0;
    public static final int VIRTIO_BLK_T_OUT = 1;
    public static final int VIRTIO_BLK_T_SCSI_CMD = 2;
    public static final int VIRTIO_BLK_T_FLUSH = 4;
    public static final int VIRTIO_BLK_T_GET_ID = 8;
    public static final int VIRTIO_BLK_T_DISCARD = 11;
    public static final int VIRTIO_BLK_T_WRITE_ZEROES = 13;
    public static final int VIRTIO_BLK_T_BARRIER = 0x80000000;

    public static final int VIRTIO_BLK_S_OK = 0;
    public static final int VIRTIO_BLK_S_IOERR = 1;
    public static final int VIRTIO_BLK_S_UNSUPP = 2;

    public static final int VIRTIO_BLK_ID_BYTES = 20;
    public static final int VIRTIO_BLK_HDR_SIZE = 16;
    public static final int VIRTIO_BLK_SEGMENT_SIZE = 16;
    public static final int VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;
    public static final int VIRTIO_BLK_SECTOR_SIZE = 512;
    public static final int VIRTIO_BLK_SECTOR_BITS = 9;

    /** virtio_blk_config byte offsets. */
    public static final int CFG_CAPACITY = 0, CFG_SIZE_MAX = 8, CFG_SEG_MAX = 12, CFG_CYLINDERS = 16,
            CFG_HEADS = 18, CFG_SECTORS = 19, CFG_BLK_SIZE = 20, CFG_PHYSICAL_BLOCK_EXP = 24,
            CFG_ALIGNMENT_OFFSET = 25, CFG_MIN_IO_SIZE = 26, CFG_OPT_IO_SIZE = 28, CFG_WRITEBACK = 32,
            CFG_NUM_QUEUES = 34, CFG_MAX_DISCARD_SECTORS = 36, CFG_MAX_DISCARD_SEG = 40,
            CFG_DISCARD_SECTOR_ALIGNMENT = 44, CFG_MAX_WRITE_ZEROES_SECTORS = 48,
            CFG_MAX_WRITE_ZEROES_SEG = 52, CFG_WRITE_ZEROES_MAY_UNMAP = 56;
    public static final int CONFIG_SIZE = 96;

    public static long bit(int b) { return 1L << b; }
}
