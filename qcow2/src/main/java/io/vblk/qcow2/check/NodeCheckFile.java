package io.vblk.qcow2.check;

import io.vblk.block.BlockNode;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;

/**
 * {@link CheckFile} over a {@link BlockNode}: copies through one reusable aligned bounce buffer
 * (1 MiB, 4 KiB aligned so it also satisfies O_DIRECT files), splitting larger requests. Reads
 * are clipped at the end of the file and the rest zero-filled. Used from one coroutine at a
 * time (the checker is sequential).
 */
final class NodeCheckFile implements CheckFile {
    private static final int BOUNCE = 1 << 20;
    private static final int ALIGN = 4096;
    private final BlockNode node;
    private NativeBuffer bounce;

    NodeCheckFile(BlockNode node) {
        this.node = node;
    }

    private NativeBuffer bounce() {
        if (bounce == null) bounce = NativeBuffer.allocate(BOUNCE, ALIGN);
        return bounce;
    }

    @Override
    public int read(long offset, byte[] dst, int dstOff, int len) {
        long fileLen = node.getLength();
        if (fileLen < 0) return (int) fileLen;
        java.util.Arrays.fill(dst, dstOff, dstOff + len, (byte) 0);
        long end = Math.min(offset + len, fileLen);
        NativeBuffer b = bounce();
        // read whole aligned blocks around the request so O_DIRECT files work too
        long pos = offset;
        while (pos < end) {
            long aStart = pos & ~(long) (ALIGN - 1);
            long aEnd = Math.min(aStart + BOUNCE, (end + ALIGN - 1) & ~(long) (ALIGN - 1));
            long readEnd = Math.min(aEnd, (fileLen + ALIGN - 1) & ~(long) (ALIGN - 1));
            int n = (int) (readEnd - aStart);
            int r = node.preadv(aStart, n, IoVector.of(b.address(), n), 0);
            if (r < 0) return r;
            long chunkEnd = Math.min(aEnd, end);
            b.copyTo(pos - aStart, dst, dstOff + (int) (pos - offset), (int) (chunkEnd - pos));
            pos = chunkEnd;
        }
        return 0;
    }

    @Override
    public int write(long offset, byte[] src, int srcOff, int len) {
        NativeBuffer b = bounce();
        long pos = offset;
        long end = offset + len;
        if (!node.isDirect()) {
            while (pos < end) {
                int n = (int) Math.min(BOUNCE, end - pos);
                b.copyFrom(src, srcOff + (int) (pos - offset), 0, n);
                int r = node.pwritev(pos, n, IoVector.of(b.address(), n), 0);
                if (r < 0) return r;
                pos += n;
            }
            return 0;
        }
        // O_DIRECT: read-modify-write in aligned blocks
        while (pos < end) {
            long aStart = pos & ~(long) (ALIGN - 1);
            long aEnd = Math.min(aStart + BOUNCE, (end + ALIGN - 1) & ~(long) (ALIGN - 1));
            long chunkEnd = Math.min(aEnd, end);
            int n = (int) (aEnd - aStart);
            if (pos != aStart || chunkEnd != aEnd) {
                long fileLen = node.getLength();
                if (fileLen < 0) return (int) fileLen;
                b.fill(0, n, (byte) 0);
                long readEnd = Math.min(aEnd, (fileLen + ALIGN - 1) & ~(long) (ALIGN - 1));
                if (readEnd > aStart) {
                    int r = node.preadv(aStart, readEnd - aStart, IoVector.of(b.address(), readEnd - aStart), 0);
                    if (r < 0) return r;
                    if (fileLen < readEnd) b.fill(fileLen - aStart, readEnd - fileLen, (byte) 0);
                }
            }
            b.copyFrom(src, srcOff + (int) (pos - offset), pos - aStart, (int) (chunkEnd - pos));
            int r = node.pwritev(aStart, n, IoVector.of(b.address(), n), 0);
            if (r < 0) return r;
            pos = chunkEnd;
        }
        return 0;
    }

    @Override
    public long length() {
        return node.getLength();
    }

    @Override
    public int flush() {
        return node.flush();
    }

    @Override
    public boolean writable() {
        return !node.isReadOnly();
    }

    @Override
    public void close() {
        if (bounce != null) {
            bounce.close();
            bounce = null;
        }
    }
}
