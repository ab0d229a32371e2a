package io.vblk.qcow2.check;

import java.util.Arrays;

/** An in-memory {@link CheckFile} for unit tests: a growable byte array, counting writes. */
final class ArrayCheckFile implements CheckFile {
    byte[] data;
    int writes;
    int flushes;
    boolean writable = true;

    ArrayCheckFile(byte[] data) {
        this.data = data;
    }

    @Override
    public int read(long offset, byte[] dst, int dstOff, int len) {
        if (offset < 0) return -22; // EINVAL, as pread
        Arrays.fill(dst, dstOff, dstOff + len, (byte) 0);
        if (offset < data.length) {
            int n = (int) Math.min(len, data.length - offset);
            System.arraycopy(data, (int) offset, dst, dstOff, n);
        }
        return 0;
    }

    @Override
    public int write(long offset, byte[] src, int srcOff, int len) {
        if (offset < 0 || offset + len > (64 << 20)) return -22; // a test image never needs more
        writes++;
        if (offset + len > data.length) data = Arrays.copyOf(data, (int) (offset + len));
        System.arraycopy(src, srcOff, data, (int) offset, len);
        return 0;
    }

    @Override
    public long length() {
        return data.length;
    }

    @Override
    public int flush() {
        flushes++;
        return 0;
    }

    @Override
    public boolean writable() {
        return writable;
    }
}
