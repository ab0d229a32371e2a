package io.vblk.block.drivers;

import io.vblk.block.BlockChild;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockDriverFactory;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.BlockStatus;
import io.vblk.block.Errno;
import io.vblk.block.IoCompletion;
import io.vblk.block.IoVector;
import io.vblk.block.PreallocMode;
import io.vblk.block.RequestFlags;
import io.vblk.block.Sizes;

/**
 * {@code raw}: the raw format, a pass-through over its {@code file} child, optionally restricted to
 * the window {@code [offset, offset+size)} of it: QEMU's block/raw-format.c. Requests are shifted
 * by {@code offset}; with {@code size}, nothing outside the window is ever read or written
 * (raw_adjust_offset: EINVAL for reads, ENOSPC for writes) and the node cannot be resized.
 */
public final class RawDriver extends BlockDriver {
    public static final BlockDriverFactory FACTORY = new BlockDriverFactory() {
        @Override
        public String name() {
            return "raw";
        }

        @Override
        public BlockDriver open(BlockNode node, BlockOptions o) throws BlockException {
            String off = o.remove("offset");
            String sz = o.remove("size");
            long offset = off == null ? 0 : Sizes.parse(off);
            long size = sz == null ? -1 : Sizes.parse(sz);
            BlockChild file = node.openChild("file", BlockChild.Role.FILE, true);
            long fileLen = file.node().getLength();
            if (fileLen < 0) {
                throw new BlockException((int) -fileLen, "raw: cannot get the length of the file");
            }
            if (offset < 0 || offset > fileLen) {
                throw new BlockException(Errno.EINVAL, "offset (" + offset + ") cannot be greater than size of image (" + fileLen + ")");
            }
            if (size >= 0 && offset + size > fileLen) {
                throw new BlockException(Errno.EINVAL, "The sum of offset (" + offset + ") and size (" + size
                        + ") has to be smaller or equal to the  actual size of the containing file (" + fileLen + ")");
            }
            return new RawDriver(file, offset, size);
        }
    };

    private final BlockChild file;
    private final long offset;
    private final long size;      // -1: the rest of the file

    private RawDriver(BlockChild file, long offset, long size) {
        this.file = file;
        this.offset = offset;
        this.size = size;
    }

    @Override
    public String driverName() {
        return "raw";
    }

    /** raw_adjust_offset: true if the request fits the window. */
    private boolean fits(long off, long bytes) {
        return size < 0 || (off <= size && bytes <= size - off);
    }

    @Override
    public int coPreadv(long off, long bytes, IoVector qiov, long qiovOffset, int flags) {
        if (!fits(off, bytes)) return -Errno.EINVAL;
        return file.node().preadv(off + offset, bytes, qiov, qiovOffset, flags);
    }

    @Override
    public boolean startRw(boolean write, long off, long bytes, IoVector qiov, long qiovOffset, int flags, IoCompletion done) {
        // a request outside the window takes the coroutine path, which returns its error
        return fits(off, bytes) && file.node().startRw(write, off + offset, bytes, qiov, qiovOffset, done);
    }

    @Override
    public int coPwritev(long off, long bytes, IoVector qiov, long qiovOffset, int flags) {
        if (!fits(off, bytes)) return -Errno.ENOSPC;
        return file.node().pwritev(off + offset, bytes, qiov, qiovOffset, flags);
    }

    @Override
    public int coPwriteZeroes(long off, long bytes, int flags) {
        if (!fits(off, bytes)) return -Errno.ENOSPC;
        return file.node().pwriteZeroes(off + offset, bytes, flags);
    }

    @Override
    public int coPdiscard(long off, long bytes) {
        if (!fits(off, bytes)) return -Errno.EINVAL;
        return file.node().pdiscard(off + offset, bytes);
    }

    @Override
    public long getLength() {
        if (size >= 0) return size;
        long l = file.node().getLength();
        return l < 0 ? l : Math.max(0, l - offset);
    }

    @Override
    public int coTruncate(long newSize, boolean exact, PreallocMode prealloc, int flags) {
        if (size >= 0 || offset != 0) {
            return -Errno.ENOTSUP;    // "Cannot resize fixed-size raw disks"
        }
        return file.node().truncate(newSize, exact, prealloc, flags);
    }

    @Override
    public int supportedWriteFlags() {
        return RequestFlags.FUA;      // handed down; the file node emulates it if it must
    }

    @Override
    public int supportedZeroFlags() {
        return RequestFlags.FUA | RequestFlags.MAY_UNMAP | RequestFlags.NO_FALLBACK;
    }

    @Override
    public boolean hasZeroInit() {
        return offset == 0 && size < 0 && file.node().driver().hasZeroInit();
    }

    @Override
    public int coBlockStatus(boolean wantZero, long off, long bytes, BlockStatus out) {
        if (!fits(off, bytes)) return -Errno.EINVAL;
        int r = file.node().blockStatus(wantZero, off + offset, bytes, out);
        if (r >= 0) {
            out.status |= BlockStatus.ALLOCATED;
        }
        return r;
    }
}
