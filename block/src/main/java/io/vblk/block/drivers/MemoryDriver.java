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
import io.vblk.block.PreallocMode;
import io.vblk.block.RequestFlags;

/**
 * {@code memory}: a RAM disk in native memory, for unit tests. Options: {@code size} (required),
 * {@code align} (request_alignment to advertise, default 1).
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
            long size = io.vblk.block.Sizes.parse(s);
            String a = o.remove("align");
            int align = a == null ? 1 : (int) io.vblk.block.Sizes.parse(a);
            return new MemoryDriver(size, align);
        }
    };

    private NativeBuffer buf;   // replaced on truncate; guarded by this for resize only
    private long size;
    private final int align;

    public MemoryDriver(long size, int align) {
        this.buf = NativeBuffer.allocate(Math.max(size, 1), 4096);
        this.size = size;
        this.align = align;
    }

    @Override
    public String driverName() {
        return "memory";
    }

    @Override
    public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        long inside = Math.max(0, Math.min(bytes, size - offset));
        if (inside > 0) qiov.copyFromAddress(qiovOffset, buf.address() + offset, inside);
        if (inside < bytes) qiov.memset(qiovOffset + inside, (byte) 0, bytes - inside);
        return 0;
    }

    @Override
    public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        if (offset + bytes > size) return -Errno.ENOSPC;
        qiov.copyToAddress(qiovOffset, buf.address() + offset, bytes);
        return 0;
    }

    @Override
    public int coPwriteZeroes(long offset, long bytes, int flags) {
        if (offset + bytes > size) return -Errno.ENOSPC;
        buf.fill(offset, bytes, (byte) 0);
        return 0;
    }

    @Override
    public int coPdiscard(long offset, long bytes) {
        return coPwriteZeroes(offset, bytes, 0);
    }

    @Override
    public long getLength() {
        return size;
    }

    @Override
    public synchronized int coTruncate(long offset, boolean exact, PreallocMode prealloc, int flags) {
        NativeBuffer n = NativeBuffer.allocate(Math.max(offset, 1), 4096);
        io.vblk.block.NativeMemory.copy(buf.address(), n.address(), Math.min(offset, size));
        buf.close();
        buf = n;
        size = offset;
        return 0;
    }

    @Override
    public void refreshLimits(BlockLimits l) {
        l.requestAlignment = Math.max(l.requestAlignment, align);
    }

    @Override
    public int supportedWriteFlags() {
        return RequestFlags.FUA;
    }

    @Override
    public int supportedZeroFlags() {
        return RequestFlags.MAY_UNMAP;
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

    @Override
    public void close() {
        buf.close();
    }
}
