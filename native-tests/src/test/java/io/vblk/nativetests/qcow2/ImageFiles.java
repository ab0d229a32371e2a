package io.vblk.nativetests.qcow2;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.block.drivers.MemoryDriver;
import io.vblk.nativetests.Requirements;
import io.vblk.qcow2.NodeRefDriver;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Helpers for qcow2 interop tests: run qemu-img / qemu-io, load an image file into a memory node,
 * open vblk's qcow2 driver over it, and write the (grown) bytes back to the file.
 */
final class ImageFiles implements AutoCloseable {
    final AioContext ctx = AioContext.start("qcow2-interop");
    final List<BlockNode> mems = new ArrayList<>();

    record Result(int exit, String out) {}

    static Result run(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "timeout: " + String.join(" ", cmd));
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    static void ok(String... cmd) throws IOException, InterruptedException {
        Result r = run(cmd);
        assertEquals(0, r.exit(), String.join(" ", cmd) + ":\n" + r.out());
    }

    static void requireQemu() {
        Requirements.require(Files.isExecutable(Path.of("/usr/bin/qemu-img")) && Files.isExecutable(Path.of("/usr/bin/qemu-io")),
                "qemu-img and qemu-io (qemu-utils) are installed");
    }

    /** A memory node holding the file's bytes, {@code headroom} bytes larger. */
    BlockNode load(Path file, long headroom) throws IOException {
        byte[] data = Files.readAllBytes(file);
        BlockNode m = BlockNode.open(BlockOptions.parse("driver=memory,size=" + (data.length + headroom)));
        NativeMemory.copyFromArray(data, 0, ((MemoryDriver) m.driver()).address(), data.length);
        mems.add(m);
        return m;
    }

    /** Writes the memory node's bytes back: the original length or up to the highest write, whichever is larger. */
    static void store(BlockNode m, Path file, long originalLength) throws IOException {
        long len = Math.max(originalLength, m.wrHighestOffset());
        long addr = ((MemoryDriver) m.driver()).address();
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(len);
            byte[] buf = new byte[1 << 20];
            for (long o = 0; o < len; o += buf.length) {
                int n = (int) Math.min(buf.length, len - o);
                NativeMemory.copyToArray(addr + o, buf, 0, n);
                f.seek(o);
                f.write(buf, 0, n);
            }
        }
    }

    BlockNode openQcow2(BlockNode mem, String extra) throws BlockException {
        String opts = "driver=qcow2,file.driver=noderef,file.id=" + NodeRefDriver.register(mem) + (extra.isEmpty() ? "" : "," + extra);
        BlockException[] err = new BlockException[1];
        BlockNode[] out = new BlockNode[1];
        ctx.run(() -> {
            try {
                out[0] = BlockNode.open(BlockOptions.parse(opts));
            } catch (BlockException e) {
                err[0] = e;
            }
            return 0;
        });
        if (err[0] != null) throw err[0];
        return out[0];
    }

    int write(BlockNode n, long off, byte[] data) {
        return ctx.run(() -> {
            try (NativeBuffer b = NativeBuffer.allocate(Math.max(1, data.length), 4096)) {
                b.copyFrom(data, 0, 0, data.length);
                return n.pwritev(off, data.length, IoVector.of(b.address(), data.length), 0, 0);
            }
        });
    }

    byte[] read(BlockNode n, long off, int len) {
        byte[] out = new byte[len];
        int r = ctx.run(() -> {
            try (NativeBuffer b = NativeBuffer.allocate(Math.max(1, len), 4096)) {
                int ret = n.preadv(off, len, IoVector.of(b.address(), len), 0, 0);
                b.copyTo(0, out, 0, len);
                return ret;
            }
        });
        assertEquals(0, r, "read " + off + "+" + len);
        return out;
    }

    int close(BlockNode n) {
        return ctx.run(n::close);
    }

    @Override
    public void close() {
        for (BlockNode m : mems) m.closeWithoutFlush();
        ctx.close();
    }
}
