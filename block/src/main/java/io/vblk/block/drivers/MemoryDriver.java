package io.vblk.block.drivers;

import io.vblk.block.BlockDriver;
import io.vblk.block.BlockDriverFactory;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLimits;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.BlockStatus;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.block.PreallocMode;
import io.vblk.block.RequestFlags;
import io.vblk.block.Sizes;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code memory}: a RAM disk in native memory, for unit tests (no QEMU counterpart; closest is
 * null-co with data). It can pose as drivers of different shapes so the generic request path can
 * be tested against them, and it counts the calls it gets.
 *
 * <p>Options: {@code size} (required); {@code align} (request_alignment, a power of two, default
 * 1); {@code max-transfer}; {@code fua} (native FUA, default on); {@code write-zeroes} (native
 * pwrite_zeroes, default on; off answers -ENOTSUP so the block layer falls back to buffers);
 * {@code zero-align} and {@code max-write-zeroes} (pwrite_zeroes alignment and maximum);
 * {@code discard-align} and {@code max-discard}.
 */
public final class MemoryDriver extends BlockDriver {
    public static final BlockDriverFactory FACTORY = new BlockDriverFactory() {
        @Override
        public String name() {
            return "memory";
        }

        @Override
        public BlockDriver open(BlockNode node, BlockOptions o) throws BlockException {
            String s = o.remove("size");
            if (s == null) throw new BlockException(Errno.EINVAL, "memory driver: parameter 'size' is required");
            MemoryDriver d = new MemoryDriver(Sizes.parse(s), (int) sizeOption(o, "align", 1, true));
            d.maxTransfer = sizeOption(o, "max-transfer", 0, false);
            d.nativeFua = o.getBool("fua", true);
            o.remove("fua");
            d.nativeZeroes = o.getBool("write-zeroes", true);
            o.remove("write-zeroes");
            d.zeroAlign = (int) sizeOption(o, "zero-align", 0, true);
            d.maxWriteZeroes = sizeOption(o, "max-write-zeroes", 0, false);
            d.discardAlign = (int) sizeOption(o, "discard-align", 0, true);
            d.maxDiscard = sizeOption(o, "max-discard", 0, false);
            return d;
        }
    };

    private static long sizeOption(BlockOptions o, String key, long dflt, boolean powerOfTwo) throws BlockException {
        String v = o.remove(key);
        if (v == null) return dflt;
        long n = Sizes.parse(v);
        if (n < 0 || (powerOfTwo && n != 0 && Long.bitCount(n) != 1) || n > Integer.MAX_VALUE && powerOfTwo) {
            throw new BlockException(Errno.EINVAL, "memory driver: invalid " + key + " '" + v + "'");
        }
        return n;
    }

    private NativeBuffer buf;   // replaced on truncate (synchronized); requests must not race a truncate
    private long size;
    private final int align;
    private long maxTransfer;
    private boolean nativeFua = true;
    private boolean nativeZeroes = true;
    private int zeroAlign;
    private long maxWriteZeroes;
    private int discardAlign;
    private long maxDiscard;

    // call counters for tests; any thread
    private final AtomicLong reads = new AtomicLong();
    private final AtomicLong writes = new AtomicLong();
    private final AtomicLong fuaWrites = new AtomicLong();
    private final AtomicLong zeroWrites = new AtomicLong();
    private final AtomicLong discards = new AtomicLong();
    private final AtomicLong flushes = new AtomicLong();
    private volatile int lastZeroFlags;

    public MemoryDriver(long size, int align) {
        this.buf = NativeBuffer.allocate(Math.max(size, 1), 4096);
        this.size = size;
        this.align = Math.max(align, 1);
    }

    @Override
    public String driverName() {
        return "memory";
    }

    @Override
    public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        reads.incrementAndGet();
        long inside = Math.max(0, Math.min(bytes, size - offset));
        if (inside > 0) qiov.copyFromAddress(qiovOffset, buf.address() + offset, inside);
        if (inside < bytes) qiov.memset(qiovOffset + inside, (byte) 0, bytes - inside);
        return 0;
    }

    @Override
    public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        writes.incrementAndGet();
        if ((flags & RequestFlags.FUA) != 0) fuaWrites.incrementAndGet();
        if (offset + bytes > size) return -Errno.ENOSPC;
        qiov.copyToAddress(qiovOffset, buf.address() + offset, bytes);
        return 0;
    }

    @Override
    public int coPwriteZeroes(long offset, long bytes, int flags) {
        if (!nativeZeroes) return -Errno.ENOTSUP;
        zeroWrites.incrementAndGet();
        lastZeroFlags = flags;
        if (offset + bytes > size) return -Errno.ENOSPC;
        buf.fill(offset, bytes, (byte) 0);
        return 0;
    }

    @Override
    public int coPdiscard(long offset, long bytes) {
        discards.incrementAndGet();
        if (offset + bytes > size) return -Errno.EINVAL;
        buf.fill(offset, bytes, (byte) 0);
        return 0;
    }

    @Override
    public int coFlushToDisk() {
        flushes.incrementAndGet();
        return 0;
    }

    @Override
    public boolean hasFlushToDisk() {
        return true;
    }

    @Override
    public long getLength() {
        return size;
    }

    @Override
    public synchronized int coTruncate(long offset, boolean exact, PreallocMode prealloc, int flags) {
        NativeBuffer n = NativeBuffer.allocate(Math.max(offset, 1), 4096);
        NativeMemory.copy(buf.address(), n.address(), Math.min(offset, size));
        buf.close();
        buf = n;
        size = offset;
        return 0;
    }

    @Override
    public void refreshLimits(BlockLimits l) {
        l.requestAlignment = Math.max(l.requestAlignment, align);
        l.maxTransfer = BlockLimits.minNonZero(l.maxTransfer, maxTransfer);
        l.pwriteZeroesAlignment = zeroAlign;
        l.maxPwriteZeroes = maxWriteZeroes;
        l.pdiscardAlignment = discardAlign;
        l.maxPdiscard = maxDiscard;
    }

    @Override
    public int supportedWriteFlags() {
        return nativeFua ? RequestFlags.FUA : 0;
    }

    @Override
    public int supportedZeroFlags() {
        return nativeZeroes ? RequestFlags.MAY_UNMAP | RequestFlags.NO_FALLBACK | (nativeFua ? RequestFlags.FUA : 0) : 0;
    }

    @Override
    public boolean hasZeroInit() {
        return true;
    }

    @Override
    public int coBlockStatus(boolean wantZero, long offset, long bytes, BlockStatus out) {
        out.set(BlockStatus.DATA | BlockStatus.OFFSET_VALID | BlockStatus.ALLOCATED, bytes, offset, node());
        return 0;
    }

    /** Direct access for tests: the address of byte 0. */
    public long address() {
        return buf.address();
    }

    /** Copies {@code len} bytes at {@code offset} of the disk into a new array (tests). */
    public byte[] snapshot(long offset, int len) {
        byte[] b = new byte[len];
        NativeMemory.copyToArray(buf.address() + offset, b, 0, len);
        return b;
    }

    public long reads() { return reads.get(); }
    public long writes() { return writes.get(); }
    /** Writes that reached the driver with FUA set (native FUA only). */
    public long fuaWrites() { return fuaWrites.get(); }
    public long zeroWrites() { return zeroWrites.get(); }
    /** The flags of the last pwrite_zeroes call. */
    public int lastZeroFlags() { return lastZeroFlags; }
    public long discards() { return discards.get(); }
    /** flush_to_disk calls. */
    public long flushes() { return flushes.get(); }

    @Override
    public void close() {
        buf.close();
    }
}
