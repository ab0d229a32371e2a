package io.vblk.aio.file;

import io.vblk.aio.LinuxAio;
import io.vblk.aio.LinuxConstants;
import io.vblk.aio.Native;
import io.vblk.block.AioContext;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockLimits;
import io.vblk.block.BlockStatus;
import io.vblk.block.Coroutine;
import io.vblk.block.Errno;
import io.vblk.block.IoCompletion;
import io.vblk.block.IoVector;
import io.vblk.block.PreallocMode;
import io.vblk.block.RequestFlags;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Logger;

/**
 * The {@code file} protocol driver: a regular file or block device (QEMU's block/file-posix.c).
 * Reads and writes go through the Linux AIO engine of the calling I/O thread ({@code aio=native},
 * which needs O_DIRECT) or through {@link ThreadPoolIo} workers ({@code aio=threads}). On O_DIRECT
 * files, requests whose buffers, offsets or lengths do not meet the probed alignment go through
 * {@link BounceBuffers} on a worker instead of failing with EINVAL.
 *
 * <p>Flush is IOCB_CMD_FDSYNC or fdatasync; after an fdatasync failure on a file without O_DIRECT
 * every later flush fails with that errno (page_cache_inconsistent: the kernel marked the failed
 * pages clean, so a retry would wrongly succeed). Discard and write-zeroes use fallocate or the
 * block-device ioctls and switch themselves off on their first "not supported".
 */
public final class FileDriver extends BlockDriver {
    private static final Logger LOG = Logger.getLogger(FileDriver.class.getName());

    private final String filename;
    private final int fd;
    private final boolean direct;
    private final boolean useNative;
    private final boolean blockDevice;
    private final int aioMaxBatch;
    private final int requestAlign;
    private final int bufAlign;
    private final int rwDsync;                  // RWF_DSYNC when FUA writes are supported, else 0
    private final ThreadPoolIo threads = ThreadPoolIo.shared();

    // latches: set once from any coroutine, read by all (benign races, as in QEMU)
    private volatile boolean discardOk = true;
    private volatile boolean zeroRangeOk = true;
    private volatile boolean punchOk = true;
    private volatile boolean blkZeroOutOk = true;
    private volatile int pageCacheInconsistent;  // errno latched after a failed fdatasync without O_DIRECT
    private final AtomicInteger injectedFlushErrno = new AtomicInteger(); // test hook, one shot
    private volatile boolean aioFallbackWarned;
    private final java.util.concurrent.atomic.AtomicLong bounced = new java.util.concurrent.atomic.AtomicLong(); // any thread
    private volatile boolean closed;

    FileDriver(String filename, int fd, boolean direct, boolean useNative, boolean blockDevice, int aioMaxBatch,
            int requestAlign, int bufAlign, boolean fua) {
        this.filename = filename;
        this.fd = fd;
        this.direct = direct;
        this.useNative = useNative;
        this.blockDevice = blockDevice;
        this.aioMaxBatch = aioMaxBatch;
        this.requestAlign = requestAlign;
        this.bufAlign = bufAlign;
        this.rwDsync = fua ? LinuxConstants.RWF_DSYNC : 0;
    }

    @Override
    public String driverName() {
        return "file";
    }

    @Override
    public String filename() {
        return filename;
    }

    public int fd() {
        return fd;
    }

    public boolean usesLinuxAio() {
        return useNative;
    }

    public boolean isBlockDevice() {
        return blockDevice;
    }

    public int requestAlignment() {
        return requestAlign;
    }

    public int bufferAlignment() {
        return bufAlign;
    }

    /** True until the first "not supported" of the respective operation. */
    public boolean discardSupported() { return discardOk; }
    public boolean zeroRangeSupported() { return zeroRangeOk; }
    public boolean punchHoleSupported() { return punchOk; }

    /** The errno latched by a failed fdatasync without O_DIRECT, or 0. */
    public int pageCacheInconsistent() {
        return pageCacheInconsistent;
    }

    /** Test hook: the next fdatasync fails with {@code errno} without calling the kernel (fault injection). */
    public void injectFlushError(int errno) {
        injectedFlushErrno.set(Math.abs(errno));
    }

    /** The AIO engine of the caller's I/O thread, or null for the threads path. */
    private LinuxAio engine() {
        Coroutine co = Coroutine.current();
        return engine(co == null ? null : co.context(), true);
    }

    /** The AIO engine of {@code ctx}, or null (native AIO off, no context, no epoll); {@code warn} logs why once. */
    private LinuxAio engine(AioContext ctx, boolean warn) {
        if (!useNative) {
            return null;
        }
        if (ctx == null || !ctx.poller().supportsFds()) {
            if (warn) warnFallback(ctx == null ? "not in a coroutine" : "I/O thread " + ctx.name() + " has no epoll poller");
            return null;
        }
        try {
            return LinuxAio.of(ctx);
        } catch (IllegalStateException e) {
            if (warn) warnFallback(e.getMessage());
            return null;
        }
    }

    private void warnFallback(String why) {
        if (!aioFallbackWarned) {
            aioFallbackWarned = true;
            LOG.warning("file " + filename + ": Linux AIO unavailable (" + why + "); using the thread pool");
        }
    }

    private boolean needsBounce(long offset, long bytes, IoVector q, long qoff) {
        if (!fitsDirect(offset, bytes, q, qoff)) {
            bounced.incrementAndGet();
            return true;
        }
        return false;
    }

    /** True unless O_DIRECT would refuse the request as it is (then it goes through a bounce buffer). */
    private boolean fitsDirect(long offset, long bytes, IoVector q, long qoff) {
        return !direct || BounceBuffers.isAligned(offset, bytes, q, qoff, requestAlign, bufAlign);
    }

    /** Requests that went through the aligned bounce buffer. */
    public long bouncedRequests() {
        return bounced.get();
    }

    // ------------------------------------------------------------------ read / write

    @Override
    public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        if (closed) {
            return -Errno.EIO;
        }
        if (bytes == 0) {
            return 0;
        }
        if (needsBounce(offset, bytes, qiov, qiovOffset)) {
            return threads.run(() -> BounceBuffers.read(fd, offset, bytes, qiov, qiovOffset, requestAlign, bufAlign));
        }
        LinuxAio aio = engine();
        if (aio != null) {
            return aio.preadv(fd, offset, qiov, qiovOffset, bytes, aioMaxBatch);
        }
        return threads.run(() -> PosixIo.preadv(fd, offset, qiov, qiovOffset, bytes));
    }

    /**
     * Linux AIO without a coroutine: only when this I/O thread has the engine and the request needs
     * no bounce buffer; anything else (threads path, bounce, a closed engine) goes the coroutine way.
     */
    @Override
    public boolean startRw(boolean write, long offset, long bytes, IoVector qiov, long qiovOffset, int flags, IoCompletion done) {
        if (closed || bytes == 0 || !fitsDirect(offset, bytes, qiov, qiovOffset)) {
            return false;
        }
        LinuxAio aio = engine(AioContext.current(), false); // the coroutine path warns when it falls back
        if (aio == null) {
            return false;
        }
        int rwFlags = (flags & RequestFlags.FUA) != 0 ? rwDsync : 0;
        return aio.start(write, fd, offset, qiov, qiovOffset, bytes, rwFlags, aioMaxBatch, done) == 0;
    }

    @Override
    public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        if (closed) {
            return -Errno.EIO;
        }
        if (bytes == 0) {
            return 0;
        }
        int rwFlags = (flags & RequestFlags.FUA) != 0 ? rwDsync : 0;
        if (needsBounce(offset, bytes, qiov, qiovOffset)) {
            return threads.run(() -> BounceBuffers.write(fd, offset, bytes, qiov, qiovOffset, requestAlign, bufAlign, rwFlags));
        }
        LinuxAio aio = engine();
        if (aio != null) {
            return aio.pwritev(fd, offset, qiov, qiovOffset, bytes, rwFlags, aioMaxBatch);
        }
        return threads.run(() -> PosixIo.pwritev(fd, offset, qiov, qiovOffset, bytes, rwFlags));
    }

    @Override
    public int supportedWriteFlags() {
        return rwDsync != 0 ? RequestFlags.FUA : 0;
    }

    // ------------------------------------------------------------------ flush

    @Override
    public boolean hasFlushToDisk() {
        return true;
    }

    @Override
    public int coFlushToDisk() {
        if (closed) {
            return -Errno.EIO;
        }
        int latched = pageCacheInconsistent;
        if (latched != 0) {
            return -latched;
        }
        LinuxAio aio = engine();
        if (aio != null && aio.fdsyncSupported()) {
            int r = aio.fdsync(fd);
            if (r != -Errno.ENOTSUP) {
                return r;
            }
        }
        int r = threads.run(() -> {
            int inj = injectedFlushErrno.getAndSet(0);
            return inj != 0 ? -inj : PosixIo.fdatasync(fd);
        });
        if (r < 0 && !direct) {
            // the kernel may have dropped the dirty pages: never report a later flush as good
            pageCacheInconsistent = -r;
        }
        return r;
    }

    // ------------------------------------------------------------------ discard / write zeroes

    @Override
    public int coPdiscard(long offset, long bytes) {
        if (!discardOk) {
            return -Errno.ENOTSUP;
        }
        int r = threads.run(() -> blockDevice
                ? PosixIo.blockRangeIoctl(fd, LinuxConstants.BLKDISCARD, offset, bytes)
                : PosixIo.fallocate(fd, LinuxConstants.FALLOC_FL_PUNCH_HOLE | LinuxConstants.FALLOC_FL_KEEP_SIZE, offset, bytes));
        if (r < 0 && Errno.isNotSupported(r)) {
            discardOk = false;
            return -Errno.ENOTSUP;
        }
        return r;
    }

    @Override
    public int supportedZeroFlags() {
        return RequestFlags.MAY_UNMAP | RequestFlags.NO_FALLBACK;
    }

    @Override
    public int coPwriteZeroes(long offset, long bytes, int flags) {
        if (closed) {
            return -Errno.EIO;
        }
        if (blockDevice) {
            // BLKZEROOUT may fall back to writing zeros in the kernel; without O_DIRECT the page cache would go stale
            if (!blkZeroOutOk || !direct || (flags & RequestFlags.NO_FALLBACK) != 0) {
                return -Errno.ENOTSUP;
            }
            int r = threads.run(() -> PosixIo.blockRangeIoctl(fd, LinuxConstants.BLKZEROOUT, offset, bytes));
            if (r < 0 && Errno.isNotSupported(r)) {
                blkZeroOutOk = false;
                return -Errno.ENOTSUP;
            }
            return r;
        }
        if ((flags & RequestFlags.MAY_UNMAP) != 0 && punchOk) {
            int r = punchAndAllocate(offset, bytes);
            if (r != -Errno.ENOTSUP) {
                return r;
            }
        }
        if (zeroRangeOk) {
            int r = threads.run(() -> PosixIo.fallocate(fd, LinuxConstants.FALLOC_FL_ZERO_RANGE, offset, bytes));
            if (r == 0) {
                return 0;
            }
            if (Errno.isNotSupported(r)) {
                zeroRangeOk = false;
            } else if (r != -Errno.EINVAL) {
                return r;
            }
        }
        if (punchOk) {
            return punchAndAllocate(offset, bytes);
        }
        return -Errno.ENOTSUP;
    }

    /** PUNCH_HOLE|KEEP_SIZE, then grows the file if the range reaches past its end. */
    private int punchAndAllocate(long offset, long bytes) {
        int r = threads.run(() -> {
            int p = PosixIo.fallocate(fd, LinuxConstants.FALLOC_FL_PUNCH_HOLE | LinuxConstants.FALLOC_FL_KEEP_SIZE, offset, bytes);
            if (p < 0) {
                return p;
            }
            FileStat st = FileStat.of(fd);
            if (st != null && st.size() < offset + bytes) {
                return PosixIo.ftruncate(fd, offset + bytes);
            }
            return 0;
        });
        if (r < 0 && Errno.isNotSupported(r)) {
            punchOk = false;
            return -Errno.ENOTSUP;
        }
        return r;
    }

    // ------------------------------------------------------------------ size

    @Override
    public long getLength() {
        if (blockDevice) {
            try (io.vblk.block.NativeBuffer v = io.vblk.block.NativeBuffer.allocate(8, 8)) {
                long r = Native.ret(Native.LIBC.ioctl(fd, LinuxConstants.BLKGETSIZE64, v.address()));
                return r < 0 ? r : io.vblk.block.NativeMemory.getLongLE(v.address());
            }
        }
        FileStat st = FileStat.of(fd);
        return st == null ? -Native.errno() : st.size();
    }

    @Override
    public int coTruncate(long offset, boolean exact, PreallocMode prealloc, int flags) {
        if (offset < 0) {
            return -Errno.EINVAL;
        }
        if (blockDevice) {
            long len = getLength();
            if (len < 0) {
                return (int) len;
            }
            if (offset > len) {
                return -Errno.ENOTSUP; // cannot grow a device
            }
            return exact && offset != len ? -Errno.ENOTSUP : 0;
        }
        if (prealloc != PreallocMode.OFF && prealloc != PreallocMode.FALLOC && prealloc != PreallocMode.METADATA) {
            return -Errno.ENOTSUP;
        }
        return threads.run(() -> {
            FileStat st = FileStat.of(fd);
            long old = st == null ? 0 : st.size();
            int r = PosixIo.ftruncate(fd, offset);
            if (r == 0 && prealloc == PreallocMode.FALLOC && offset > old) {
                r = PosixIo.fallocate(fd, 0, old, offset - old);
            }
            return r;
        });
    }

    // ------------------------------------------------------------------ block status

    @Override
    public int coBlockStatus(boolean wantZero, long offset, long bytes, BlockStatus out) {
        int data = BlockStatus.DATA | BlockStatus.OFFSET_VALID | BlockStatus.ALLOCATED;
        int zero = BlockStatus.ZERO | BlockStatus.OFFSET_VALID | BlockStatus.ALLOCATED;
        if (!wantZero || blockDevice) {
            out.set(data, bytes, offset, node);
            return 0;
        }
        long d = Native.ret(Native.LIBC.lseek(fd, offset, LinuxConstants.SEEK_DATA));
        if (d == -Errno.ENXIO) {
            out.set(zero, bytes, offset, node); // a hole up to end of file (or past it)
            return 0;
        }
        if (d < 0) {
            out.set(data, bytes, offset, node); // SEEK_DATA unsupported: say data
            return 0;
        }
        if (d > offset) {
            out.set(zero, Math.min(bytes, d - offset), offset, node);
            return 0;
        }
        long h = Native.ret(Native.LIBC.lseek(fd, offset, LinuxConstants.SEEK_HOLE));
        long n = h > offset ? Math.min(bytes, h - offset) : bytes;
        out.set(data, n, offset, node);
        return 0;
    }

    // ------------------------------------------------------------------ limits, close

    @Override
    public void refreshLimits(BlockLimits l) {
        l.requestAlignment = Math.max(l.requestAlignment, requestAlign);
        l.minMemAlignment = Math.max(l.minMemAlignment, bufAlign);
        l.optMemAlignment = Math.max(l.optMemAlignment, Math.max(bufAlign, AlignmentProbe.pageSize()));
        l.maxIov = Math.min(l.maxIov, LinuxConstants.UIO_MAXIOV);
    }

    @Override
    public boolean hasZeroInit() {
        return !blockDevice;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Native.LIBC.close(fd);
        }
    }

    @Override
    public String toString() {
        return "FileDriver[" + filename + (direct ? ", O_DIRECT" : "") + (useNative ? ", aio=native" : ", aio=threads")
                + ", align " + requestAlign + "/" + bufAlign + "]";
    }
}
