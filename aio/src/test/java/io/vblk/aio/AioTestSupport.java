package io.vblk.aio;

import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** Shared helpers of the aio tests: pattern files, opening file nodes, batches in one deferred section. */
public final class AioTestSupport {
    private AioTestSupport() {}

    /** The byte at {@code pos} of the test pattern (distinct per 4 KiB block and position). */
    public static byte pattern(long pos) {
        return (byte) ((pos * 31 + (pos >>> 12) * 7 + 1) & 0xff);
    }

    public static byte[] patternBytes(long offset, int len) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = pattern(offset + i);
        }
        return b;
    }

    /** Writes a pattern file of {@code size} bytes and returns its path. */
    public static Path patternFile(Path dir, String name, int size) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, patternBytes(0, size));
        return p;
    }

    public static BlockNode open(Path file, String extra) throws BlockException {
        return BlockNode.open(BlockOptions.parse("driver=file,filename=" + file + (extra.isEmpty() ? "" : "," + extra)));
    }

    /** Reads into a fresh aligned buffer through {@code node} on {@code ctx}; returns the bytes, throws on error. */
    public static byte[] read(AioContext ctx, BlockNode node, long offset, int len) {
        try (NativeBuffer b = NativeBuffer.allocate(len, 4096)) {
            int r = ctx.run(() -> node.preadv(offset, len, b.asIoVector(0, len), 0));
            if (r < 0) {
                throw new AssertionError("read " + offset + "+" + len + ": " + io.vblk.block.Errno.name(r));
            }
            byte[] out = new byte[len];
            b.copyTo(0, out, 0, len);
            return out;
        }
    }

    public static int write(AioContext ctx, BlockNode node, long offset, byte[] data, int flags) {
        try (NativeBuffer b = NativeBuffer.allocate(data.length, 4096)) {
            b.copyFrom(data, 0, 0, data.length);
            return ctx.run(() -> node.pwritev(offset, data.length, b.asIoVector(0, data.length), flags));
        }
    }

    /** Runs {@code n} reads of 4 KiB (block i at offset i*4096) as coroutines started inside one deferred-call section. */
    public static int[] readBatch(AioContext ctx, BlockNode node, NativeBuffer buf, int n) throws InterruptedException {
        int[] results = new int[n];
        CountDownLatch done = new CountDownLatch(n);
        ctx.runOnThread(() -> {
            ctx.deferBegin();
            try {
                for (int i = 0; i < n; i++) {
                    int k = i;
                    ctx.spawn(() -> {
                        IoVector v = IoVector.of(buf.address() + 4096L * k, 4096);
                        results[k] = node.preadv(4096L * k, 4096, v, 0);
                        done.countDown();
                    });
                }
            } finally {
                ctx.deferEnd();
            }
        });
        if (!done.await(30, TimeUnit.SECONDS)) {
            throw new AssertionError("batch did not complete");
        }
        return results;
    }
}
