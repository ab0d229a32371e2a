package io.vblk.qcow2;

import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.drivers.MemoryDriver;
import java.util.function.IntSupplier;

/** Test fixture: a memory node holding a qcow2 image, opened through {@code noderef}, with a coroutine context. */
final class TestImage implements AutoCloseable {
    final AioContext ctx;
    final BlockNode mem;
    final String id;
    BlockNode q;

    TestImage(long fileSize) throws BlockException {
        ctx = AioContext.start("qcow2-test");
        mem = BlockNode.open(BlockOptions.parse("driver=memory,size=" + fileSize));
        id = NodeRefDriver.register(mem);
    }

    int run(IntSupplier body) {
        return ctx.run(body);
    }

    void create(Qcow2Creator.Options o) {
        int r = run(() -> {
            try {
                Qcow2Creator.create(mem, o);
                return 0;
            } catch (BlockException e) {
                throw new RuntimeException(e);
            }
        });
        if (r < 0) throw new IllegalStateException("create failed " + r);
    }

    BlockNode open(String extra) throws BlockException {
        String opts = "driver=qcow2,file.driver=noderef,file.id=" + id + (extra == null || extra.isEmpty() ? "" : "," + extra);
        BlockException[] err = new BlockException[1];
        BlockNode[] out = new BlockNode[1];
        run(() -> {
            try {
                out[0] = BlockNode.open(BlockOptions.parse(opts));
            } catch (BlockException e) {
                err[0] = e;
            }
            return 0;
        });
        if (err[0] != null) throw err[0];
        q = out[0];
        return q;
    }

    Qcow2Driver drv() {
        return (Qcow2Driver) q.driver();
    }

    int closeImage() {
        if (q == null) return 0;
        BlockNode n = q;
        q = null;
        return run(n::close);
    }

    /** Raw image bytes [off, off+len). */
    byte[] raw(long off, int len) {
        byte[] b = new byte[len];
        io.vblk.block.NativeMemory.copyToArray(((MemoryDriver) mem.driver()).address() + off, b, 0, len);
        return b;
    }

    void rawWrite(long off, byte[] b) {
        io.vblk.block.NativeMemory.copyFromArray(b, 0, ((MemoryDriver) mem.driver()).address() + off, b.length);
    }

    long rawAddress() {
        return ((MemoryDriver) mem.driver()).address();
    }

    static int write(BlockNode n, long off, byte[] data) {
        try (NativeBuffer b = NativeBuffer.allocate(Math.max(1, data.length), 4096)) {
            b.copyFrom(data, 0, 0, data.length);
            return n.pwritev(off, data.length, IoVector.of(b.address(), data.length), 0, 0);
        }
    }

    static byte[] read(BlockNode n, long off, int len, int[] ret) {
        try (NativeBuffer b = NativeBuffer.allocate(Math.max(1, len), 4096)) {
            ret[0] = n.preadv(off, len, IoVector.of(b.address(), len), 0, 0);
            byte[] out = new byte[len];
            b.copyTo(0, out, 0, len);
            return out;
        }
    }

    @Override
    public void close() {
        try {
            closeImage();
        } finally {
            mem.closeWithoutFlush();
            ctx.close();
        }
    }
}
