package io.vblk.block;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * An aligned block of native memory that never moves, for data the kernel reads or writes after a
 * call returns (O_DIRECT buffers, bounce buffers, metadata cache slices). QEMU's qemu_blockalign.
 *
 * <p>Owned by whoever allocated it; {@link #close()} frees it at once. Not thread-safe to close
 * while in use.
 */
public final class NativeBuffer implements AutoCloseable {
    private final Arena arena;
    private final MemorySegment segment;

    private NativeBuffer(long size, long align) {
        this.arena = Arena.ofShared();
        this.segment = arena.allocate(Math.max(size, 1), Math.max(align, 8));
    }

    /** Zero-filled buffer of {@code size} bytes aligned to {@code align} (a power of two). */
    public static NativeBuffer allocate(long size, long align) {
        if (size < 0 || Long.bitCount(align) != 1) {
            throw new IllegalArgumentException("size " + size + " align " + align);
        }
        return new NativeBuffer(size, align);
    }

    public long address() { return segment.address(); }
    public long size() { return segment.byteSize(); }
    public MemorySegment segment() { return segment; }

    /** A single-slice IoVector over [off, off+len) of this buffer. */
    public IoVector asIoVector(long off, long len) {
        checkRange(off, len);
        IoVector v = new IoVector(1);
        v.add(address() + off, len);
        return v;
    }

    public void fill(long off, long len, byte value) {
        checkRange(off, len);
        segment.asSlice(off, len).fill(value);
    }

    public void copyFrom(byte[] src, int srcOff, long off, int len) {
        checkRange(off, len);
        MemorySegment.copy(src, srcOff, segment, ValueLayout.JAVA_BYTE, off, len);
    }

    public void copyTo(long off, byte[] dst, int dstOff, int len) {
        checkRange(off, len);
        MemorySegment.copy(segment, ValueLayout.JAVA_BYTE, off, dst, dstOff, len);
    }

    private void checkRange(long off, long len) {
        if (off < 0 || len < 0 || off + len > segment.byteSize()) {
            throw new IndexOutOfBoundsException("range " + off + "+" + len + " outside buffer of " + segment.byteSize());
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
