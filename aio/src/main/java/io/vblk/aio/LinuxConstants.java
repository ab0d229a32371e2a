package io.vblk.aio;

/**
 * Linux kernel ABI constants the aio module uses, with the kernel's names: AIO opcodes and flags
 * ({@code include/uapi/linux/aio_abi.h}), RWF_* ({@code uapi/linux/fs.h}), fallocate modes
 * ({@code uapi/linux/falloc.h}), block ioctls, eventfd/epoll flags, lseek whence values, and the
 * offsets of the few {@code struct stat}/{@code statfs} fields we read. Per-architecture values
 * (syscall numbers, O_DIRECT) live in {@link Syscalls}.
 */
public final class LinuxConstants {
    private LinuxConstants() {}

    // ---- aio_abi.h
    public static final int IOCB_CMD_PREAD = 0;
    public static final int IOCB_CMD_PWRITE = 1;
    public static final int IOCB_CMD_FSYNC = 2;
    public static final int IOCB_CMD_FDSYNC = 3;
    public static final int IOCB_CMD_PREADV = 7;
    public static final int IOCB_CMD_PWRITEV = 8;
    public static final int IOCB_FLAG_RESFD = 1;
    /** The ring header's magic: user-space reaping is safe only when it matches. */
    public static final int AIO_RING_MAGIC = 0xa10a10a1;
    /** Maximum iovec count per request (UIO_MAXIOV). */
    public static final int UIO_MAXIOV = 1024;

    // ---- RWF_* for preadv2/pwritev2 and iocb.aio_rw_flags
    public static final int RWF_HIPRI = 0x01;
    public static final int RWF_DSYNC = 0x02;
    public static final int RWF_SYNC = 0x04;
    public static final int RWF_NOWAIT = 0x08;

    // ---- fallocate modes
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;

    // ---- block device ioctls
    public static final long BLKSSZGET = 0x1268;
    public static final long BLKPBSZGET = 0x127B;
    public static final long BLKDISCARD = 0x1277;
    public static final long BLKZEROOUT = 0x127F;
    public static final long BLKGETSIZE64 = 0x80081272L;

    // ---- eventfd
    public static final int EFD_SEMAPHORE = 1;
    public static final int EFD_NONBLOCK = 0x800;
    public static final int EFD_CLOEXEC = 0x80000;

    // ---- epoll
    public static final int EPOLL_CLOEXEC = 0x80000;
    public static final int EPOLL_CTL_ADD = 1;
    public static final int EPOLL_CTL_DEL = 2;
    public static final int EPOLL_CTL_MOD = 3;
    public static final int EPOLLIN = 0x001;
    public static final int EPOLLERR = 0x008;
    public static final int EPOLLHUP = 0x010;
    /** struct epoll_event is packed (12 bytes) on x86_64 and naturally aligned (16 bytes) elsewhere. */
    public static final int EPOLL_EVENT_SIZE = Syscalls.X86_64 ? 12 : 16;
    public static final int EPOLL_EVENT_DATA_OFFSET = Syscalls.X86_64 ? 4 : 8;

    // ---- lseek
    public static final int SEEK_SET = 0;
    public static final int SEEK_END = 2;
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;

    // ---- struct stat (asm/stat.h; x86_64 and asm-generic differ in st_mode's place)
    public static final int STAT_SIZE = 256; // buffer size, larger than either layout
    public static final int STAT_ST_MODE = Syscalls.X86_64 ? 24 : 16;
    public static final int STAT_ST_RDEV = Syscalls.X86_64 ? 40 : 32;
    public static final int STAT_ST_SIZE = 48;
    public static final int STAT_ST_BLKSIZE = 56;
    public static final int S_IFMT = 0170000;
    public static final int S_IFREG = 0100000;
    public static final int S_IFDIR = 0040000;
    public static final int S_IFBLK = 0060000;
    public static final int S_IFCHR = 0020000;

    // ---- struct statfs: f_type is the first field on both architectures
    public static final int STATFS_SIZE = 128;
    public static final int STATFS_F_TYPE = 0;
    public static final long NFS_SUPER_MAGIC = 0x6969;

    // ---- sysconf
    public static final int SC_PAGESIZE = 30;
}
