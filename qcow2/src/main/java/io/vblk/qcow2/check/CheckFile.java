package io.vblk.qcow2.check;

import io.vblk.block.BlockNode;

/**
 * The byte-level view of an image file that the consistency checker reads and repairs: the
 * checker's own access path, independent of the driver's metadata caches (QEMU's check uses
 * bdrv_pread/bdrv_pwrite on bs->file the same way). Methods return 0 or a negative errno and
 * never throw on I/O errors. Reads past the end of the file return zeros for the missing part, as
 * QEMU's file layer does.
 *
 * <p>{@link #of(BlockNode)} adapts a protocol node; its methods must be called from a coroutine
 * on the node's I/O context (for example inside {@code AioContext.run}).
 */
public interface CheckFile {
    /** Reads {@code len} bytes at {@code offset} into {@code dst}; bytes past the end read as zero. */
    int read(long offset, byte[] dst, int dstOff, int len);

    /** Writes {@code len} bytes of {@code src} at {@code offset}, growing the file if needed. */
    int write(long offset, byte[] src, int srcOff, int len);

    /** Current file length in bytes, or a negative errno. */
    long length();

    /** Makes previous writes durable. */
    int flush();

    /** Whether writes are allowed (the file was opened read-write). */
    boolean writable();

    /** Releases buffers (does not close the underlying file). */
    default void close() {}

    /** Adapts a protocol (file) node. */
    static CheckFile of(BlockNode file) {
        return new NodeCheckFile(file);
    }
}
