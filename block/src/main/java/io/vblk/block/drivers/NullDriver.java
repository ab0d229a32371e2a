package io.vblk.block.drivers;

import io.vblk.block.BlockDriver;
import io.vblk.block.BlockDriverFactory;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.BlockStatus;
import io.vblk.block.Coroutine;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.RequestFlags;
import io.vblk.block.Sizes;

/**
 * {@code null}: reads zeros (or leaves buffers untouched with {@code read-zeroes=off}) and drops
 * writes, optionally after {@code latency-ns}: QEMU's null-co, for measuring the stack itself.
 * Options: {@code size} (default 1G), {@code latency-ns} (the request's coroutine sleeps on a timer
 * of its context, as null-co's co_sleep_ns; requests outside a coroutine do not wait),
 * {@code read-zeroes} (default on).
 *
 * <p>Without latency every method returns at once and allocates nothing.
 */
public final class NullDriver extends BlockDriver {
    public static final BlockDriverFactory FACTORY = new BlockDriverFactory() {
        @Override
        public String name() {
            return "null";
        }

        @Override
        public BlockDriver open(BlockNode node, BlockOptions o) throws BlockException {
            long size = Sizes.parse(o.get("size", "1G"));
            o.remove("size");
            long lat = o.getLong("latency-ns", 0);
            o.remove("latency-ns");
            if (size < 0 || lat < 0) {
                throw new BlockException(Errno.EINVAL, "null driver: size and latency-ns must not be negative");
            }
            boolean zeroes = o.getBool("read-zeroes", true);
            o.remove("read-zeroes");
            return new NullDriver(size, lat, zeroes);
        }
    };

    private final long size;
    private final long latencyNs;
    private final boolean readZeroes;

    public NullDriver(long size, long latencyNs, boolean readZeroes) {
        this.size = size;
        this.latencyNs = latencyNs;
        this.readZeroes = readZeroes;
    }

    @Override
    public String driverName() {
        return "null";
    }

    private void delay() {
        if (latencyNs > 0 && Coroutine.inCoroutine()) {
            Coroutine.sleep(latencyNs);
        }
    }

    @Override
    public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        delay();
        if (readZeroes) qiov.memset(qiovOffset, (byte) 0, bytes);
        return 0;
    }

    @Override
    public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        delay();
        return 0;
    }

    @Override
    public int coPwriteZeroes(long offset, long bytes, int flags) {
        delay();
        return 0;
    }

    @Override
    public int coPdiscard(long offset, long bytes) {
        delay();
        return 0;
    }

    @Override
    public int coFlushToDisk() {
        delay();
        return 0;
    }

    @Override
    public boolean hasFlushToDisk() {
        return latencyNs > 0;
    }

    @Override
    public long getLength() {
        return size;
    }

    @Override
    public int supportedWriteFlags() {
        return RequestFlags.FUA;
    }

    @Override
    public int supportedZeroFlags() {
        return RequestFlags.MAY_UNMAP | RequestFlags.FUA | RequestFlags.NO_FALLBACK;
    }

    @Override
    public int coBlockStatus(boolean wantZero, long offset, long bytes, BlockStatus out) {
        out.set(BlockStatus.OFFSET_VALID | (readZeroes ? BlockStatus.ZERO : 0), bytes, offset, node());
        return 0;
    }

    @Override
    public boolean hasZeroInit() {
        return readZeroes;
    }
}
