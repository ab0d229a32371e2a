package io.vblk.block;

import java.util.Arrays;

/**
 * A list of native memory slices: QEMU's QEMUIOVector. Guest buffers become an IoVector once, at
 * the virtqueue, and the same slices reach io_submit: concat and slice copy slice descriptors,
 * never data.
 *
 * <p>Reusable: {@link #reset()} keeps the arrays, so a pooled request allocates nothing in the
 * steady state. Not thread-safe; an IoVector belongs to one request at a time.
 */
public final class IoVector {
    private long[] base;
    private long[] len;
    private int niov;
    private long size;

    public IoVector() {
        this(4);
    }

    public IoVector(int capacity) {
        base = new long[Math.max(capacity, 1)];
        len = new long[Math.max(capacity, 1)];
    }

    /** One slice covering a buffer. */
    public static IoVector of(long address, long length) {
        IoVector v = new IoVector(1);
        v.add(address, length);
        return v;
    }

    public void reset() {
        niov = 0;
        size = 0;
    }

    /** Appends a slice; merges with the previous one when contiguous. Zero-length slices are skipped. */
    public IoVector add(long address, long length) {
        if (length < 0) throw new IllegalArgumentException("negative length " + length);
        if (length == 0) return this;
        if (niov > 0 && base[niov - 1] + len[niov - 1] == address) {
            len[niov - 1] += length;
        } else {
            if (niov == base.length) {
                int n = base.length * 2;
                base = Arrays.copyOf(base, n);
                len = Arrays.copyOf(len, n);
            }
            base[niov] = address;
            len[niov] = length;
            niov++;
        }
        size += length;
        return this;
    }

    /** Appends the bytes [offset, offset+bytes) of {@code src} (qemu_iovec_concat). */
    public IoVector concat(IoVector src, long offset, long bytes) {
        if (offset < 0 || bytes < 0 || offset + bytes > src.size) {
            throw new IndexOutOfBoundsException("concat " + offset + "+" + bytes + " of " + src.size);
        }
        int i = 0;
        while (bytes > 0) {
            long l = src.len[i];
            if (offset >= l) {
                offset -= l;
                i++;
                continue;
            }
            long n = Math.min(l - offset, bytes);
            add(src.base[i] + offset, n);
            bytes -= n;
            offset = 0;
            i++;
        }
        return this;
    }

    /** A new IoVector over [offset, offset+bytes) of this one. */
    public IoVector slice(long offset, long bytes) {
        return new IoVector(niov).concat(this, offset, bytes);
    }

    public long size() { return size; }
    public int count() { return niov; }
    public long address(int i) { return base[i]; }
    public long length(int i) { return len[i]; }

    /** Fills [offset, offset+bytes) with {@code value} (qemu_iovec_memset). */
    public void memset(long offset, byte value, long bytes) {
        checkRange(offset, bytes);
        for (int i = 0; i < niov && bytes > 0; i++) {
            if (offset >= len[i]) {
                offset -= len[i];
                continue;
            }
            long n = Math.min(len[i] - offset, bytes);
            NativeMemory.fill(base[i] + offset, n, value);
            bytes -= n;
            offset = 0;
        }
    }

    /** True if [offset, offset+bytes) is all zero (qemu_iovec_is_zero). */
    public boolean isZero(long offset, long bytes) {
        checkRange(offset, bytes);
        for (int i = 0; i < niov && bytes > 0; i++) {
            if (offset >= len[i]) {
                offset -= len[i];
                continue;
            }
            long n = Math.min(len[i] - offset, bytes);
            if (!NativeMemory.isZero(base[i] + offset, n)) return false;
            bytes -= n;
            offset = 0;
        }
        return true;
    }

    public boolean isZero() {
        return isZero(0, size);
    }

    /** Copies {@code bytes} bytes from native memory at {@code srcAddr} into this vector at {@code offset}. */
    public void copyFromAddress(long offset, long srcAddr, long bytes) {
        checkRange(offset, bytes);
        for (int i = 0; i < niov && bytes > 0; i++) {
            if (offset >= len[i]) {
                offset -= len[i];
                continue;
            }
            long n = Math.min(len[i] - offset, bytes);
            NativeMemory.copy(srcAddr, base[i] + offset, n);
            srcAddr += n;
            bytes -= n;
            offset = 0;
        }
    }

    /** Copies {@code bytes} bytes of this vector starting at {@code offset} to native memory at {@code dstAddr}. */
    public void copyToAddress(long offset, long dstAddr, long bytes) {
        checkRange(offset, bytes);
        for (int i = 0; i < niov && bytes > 0; i++) {
            if (offset >= len[i]) {
                offset -= len[i];
                continue;
            }
            long n = Math.min(len[i] - offset, bytes);
            NativeMemory.copy(base[i] + offset, dstAddr, n);
            dstAddr += n;
            bytes -= n;
            offset = 0;
        }
    }

    /** Copies from another vector: this[dstOff..] = src[srcOff..], {@code bytes} bytes. */
    public void copyFrom(long dstOff, IoVector src, long srcOff, long bytes) {
        src.checkRange(srcOff, bytes);
        checkRange(dstOff, bytes);
        int i = 0;
        while (bytes > 0) {
            if (srcOff >= src.len[i]) {
                srcOff -= src.len[i];
                i++;
                continue;
            }
            long n = Math.min(src.len[i] - srcOff, bytes);
            copyFromAddress(dstOff, src.base[i] + srcOff, n);
            dstOff += n;
            bytes -= n;
            srcOff = 0;
            i++;
        }
    }

    public void copyFromArray(long offset, byte[] src, int srcOff, int bytes) {
        checkRange(offset, bytes);
        for (int i = 0; i < niov && bytes > 0; i++) {
            if (offset >= len[i]) {
                offset -= len[i];
                continue;
            }
            int n = (int) Math.min(len[i] - offset, bytes);
            NativeMemory.copyFromArray(src, srcOff, base[i] + offset, n);
            srcOff += n;
            bytes -= n;
            offset = 0;
        }
    }

    public void copyToArray(long offset, byte[] dst, int dstOff, int bytes) {
        checkRange(offset, bytes);
        for (int i = 0; i < niov && bytes > 0; i++) {
            if (offset >= len[i]) {
                offset -= len[i];
                continue;
            }
            int n = (int) Math.min(len[i] - offset, bytes);
            NativeMemory.copyToArray(base[i] + offset, dst, dstOff, n);
            dstOff += n;
            bytes -= n;
            offset = 0;
        }
    }

    /** True if every slice starts at a multiple of {@code memAlign} and has a length that is a multiple of {@code lenAlign}. */
    public boolean isAligned(long memAlign, long lenAlign) {
        for (int i = 0; i < niov; i++) {
            if ((base[i] & (memAlign - 1)) != 0 || len[i] % lenAlign != 0) return false;
        }
        return true;
    }

    private void checkRange(long offset, long bytes) {
        if (offset < 0 || bytes < 0 || offset + bytes > size) {
            throw new IndexOutOfBoundsException("range " + offset + "+" + bytes + " outside IoVector of " + size);
        }
    }

    @Override
    public String toString() {
        return "IoVector[" + niov + " slices, " + size + " bytes]";
    }
}
