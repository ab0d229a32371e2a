package io.vblk.cli;

import io.vblk.aio.AioStats;
import io.vblk.block.IoVector;

/**
 * What {@code vblk bench} drives: the block layer ({@code --path block}, {@link BlockBenchPath}),
 * the Linux AIO engine alone ({@code --path aio}, {@link AioBenchPath}), or the virtio-blk device
 * ({@code --path virtio}, provided by {@code io.vblk.cli.VirtioBenchPath}, which must offer
 * {@code public static BenchPath open(ImageSpec spec, io.vblk.block.AioContext ctx)}).
 *
 * <p>{@link #request} and {@link #flush} run in coroutines on the bench's I/O thread, up to
 * {@code depth} at a time; they must not allocate per request.
 */
public interface BenchPath extends AutoCloseable {
    /** The I/O thread whose coroutines issue the requests. */
    io.vblk.block.AioContext context();

    /** The addressable size in bytes. */
    long length();

    /** One read or write of {@code qiov.size()} bytes at {@code offset}; 0 or a negative errno. */
    int request(boolean write, long offset, IoVector qiov);

    /** The completion of a request started by {@link #start}: 0 or a negative errno. I/O thread. */
    interface Completion {
        void done(int ret);
    }

    /**
     * Starts a read or write without a waiting coroutine, on the I/O thread outside any coroutine:
     * returns 0 when started ({@code done} then runs later on the I/O thread, never from inside
     * this call) or a negative errno when it failed at once (and {@code done} never runs). Only
     * for paths whose {@link #canStart} is true; the runner uses {@link #request} otherwise.
     * {@code --path virtio} has it: its guest driver adds a chain and returns, and the used-ring
     * interrupt reports the completion, as a guest's interrupt handler does; a guest's vCPU never
     * waits in the device's thread, so neither does the bench's guest. Must not allocate.
     */
    default int start(boolean write, long offset, IoVector qiov, Completion done) {
        throw new UnsupportedOperationException("start");
    }

    /** True if {@link #start} is implemented. */
    default boolean canStart() {
        return false;
    }

    /** A flush (for {@code --flush-interval}); 0 or a negative errno. */
    int flush();

    /**
     * Addresses of {@code count} request buffers of {@code size} bytes in memory the path owns and
     * frees at {@link #close}, or null to let the runner allocate them (aligned to
     * {@link #bufferAlignment}). {@code --path virtio} puts them in guest RAM, as a guest's are.
     */
    default long[] requestBuffers(int count, long size) {
        return null;
    }

    /** Alignment the buffers must have (O_DIRECT needs the memory alignment of the device). */
    default long bufferAlignment() {
        return 4096;
    }

    /** The Linux AIO engine's counters when this path uses one, else null. Read on the I/O thread. */
    default AioStats aioStats() {
        return null;
    }

    /** Closes what {@code open} opened (on the caller's thread, after the run). */
    @Override
    void close();
}
