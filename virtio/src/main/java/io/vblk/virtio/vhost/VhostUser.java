package io.vblk.virtio.vhost;

/**
 * vhost-user protocol constants with the names of QEMU's docs/interop/vhost-user.rst (front-end
 * requests, backend requests, header flags, protocol feature bits) plus the Linux socket constants
 * the fd-passing socket needs. One place per module, as the project's code habits ask.
 */
public final class VhostUser {
    private VhostUser() {}

    // ---- header
    public static final int HEADER_SIZE = 12;
    public static final int VERSION = 1;
    public static final int FLAG_VERSION_MASK = 0x3;
    public static final int FLAG_REPLY = 1 << 2;
    public static final int FLAG_NEED_REPLY = 1 << 3;
    /** Largest payload we accept (SET_MEM_TABLE with 8 regions is 264 bytes; GET_CONFIG 12+256). */
    public static final int MAX_PAYLOAD = 4096;

    // ---- front-end -> backend requests
    public static final int GET_FEATURES = 1;
    public static final int SET_FEATURES = 2;
    public static final int SET_OWNER = 3;
    public static final int RESET_OWNER = 4;
    public static final int SET_MEM_TABLE = 5;
    public static final int SET_LOG_BASE = 6;
    public static final int SET_LOG_FD = 7;
    public static final int SET_VRING_NUM = 8;
    public static final int SET_VRING_ADDR = 9;
    public static final int SET_VRING_BASE = 10;
    public static final int GET_VRING_BASE = 11;
    public static final int SET_VRING_KICK = 12;
    public static final int SET_VRING_CALL = 13;
    public static final int SET_VRING_ERR = 14;
    public static final int GET_PROTOCOL_FEATURES = 15;
    public static final int SET_PROTOCOL_FEATURES = 16;
    public static final int GET_QUEUE_NUM = 17;
    public static final int SET_VRING_ENABLE = 18;
    public static final int SET_BACKEND_REQ_FD = 21;
    public static final int GET_CONFIG = 24;
    public static final int SET_CONFIG = 25;
    public static final int GET_INFLIGHT_FD = 31;
    public static final int SET_INFLIGHT_FD = 32;
    public static final int RESET_DEVICE = 34;
    public static final int GET_MAX_MEM_SLOTS = 36;
    public static final int ADD_MEM_REG = 37;
    public static final int REM_MEM_REG = 38;

    // ---- backend -> front-end requests (on the SET_BACKEND_REQ_FD channel)
    public static final int BACKEND_CONFIG_CHANGE_MSG = 2;

    // ---- protocol feature bits
    public static final int PROTOCOL_F_MQ = 0;
    public static final int PROTOCOL_F_LOG_SHMFD = 1;
    public static final int PROTOCOL_F_REPLY_ACK = 3;
    public static final int PROTOCOL_F_BACKEND_REQ = 5;
    public static final int PROTOCOL_F_CONFIG = 9;
    public static final int PROTOCOL_F_INFLIGHT_SHMFD = 12;
    public static final int PROTOCOL_F_RESET_DEVICE = 13;
    public static final int PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15;

    /** The protocol features this backend offers. */
    public static final long SUPPORTED_PROTOCOL_FEATURES = (1L << PROTOCOL_F_MQ) | (1L << PROTOCOL_F_REPLY_ACK)
            | (1L << PROTOCOL_F_BACKEND_REQ) | (1L << PROTOCOL_F_CONFIG) | (1L << PROTOCOL_F_INFLIGHT_SHMFD)
            | (1L << PROTOCOL_F_RESET_DEVICE) | (1L << PROTOCOL_F_CONFIGURE_MEM_SLOTS);

    /** Virtio feature bit vhost-user reuses to say "protocol features are available". */
    public static final int F_PROTOCOL_FEATURES = 30;

    // ---- payload sizes
    public static final int U64_SIZE = 8;
    public static final int VRING_STATE_SIZE = 8;     // u32 index, u32 num
    public static final int VRING_ADDR_SIZE = 40;     // u32 index, u32 flags, u64 desc, used, avail, log
    public static final int MEM_REGION_SIZE = 32;     // u64 guest_phys, size, user_addr, mmap_offset
    public static final int MEM_TABLE_HEADER = 8;     // u32 nregions, u32 padding
    public static final int MEM_REG_MSG_SIZE = 8 + MEM_REGION_SIZE; // u64 padding + region
    public static final int CONFIG_HEADER = 12;       // u32 offset, size, flags
    public static final int CONFIG_MAX = 256;
    public static final int INFLIGHT_SIZE = 24;       // u64 mmap_size, u64 mmap_offset, u16 num_queues, u16 queue_size, pad
    /** SET_MEM_TABLE carries at most this many regions (VHOST_MEMORY_BASELINE_NREGIONS). */
    public static final int MAX_TABLE_REGIONS = 8;
    /** What GET_MAX_MEM_SLOTS answers: the most regions ADD_MEM_REG may build up. */
    public static final int MAX_MEM_SLOTS = 32;
    /** Bit in SET_VRING_KICK/CALL/ERR payloads: no fd is passed. */
    public static final long VRING_NOFD_MASK = 1L << 8;
    public static final long VRING_IDX_MASK = 0xff;
    /** Largest split ring (virtio spec). */
    public static final int MAX_QUEUE_SIZE = 32768;

    // ---- Linux socket ABI (x86_64 / aarch64)
    public static final int AF_UNIX = 1;
    public static final int SOCK_STREAM = 1;
    public static final int SOCK_CLOEXEC = 0x80000;
    public static final int SOL_SOCKET = 1;
    public static final int SCM_RIGHTS = 1;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_CTRUNC = 0x8;
    public static final int MSG_CMSG_CLOEXEC = 0x40000000;
    public static final int SHUT_RDWR = 2;
    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;
    public static final int MFD_CLOEXEC = 1;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 1;
    public static final long MAP_FAILED = -1L;
}
