package io.vblk.nativetests.bench.aio;

import io.vblk.aio.IoThreads;
import io.vblk.aio.LinuxAio;
import io.vblk.aio.Native;
import io.vblk.aio.Syscalls;
import io.vblk.block.AioContext;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.nativetests.bench.FanOut;
import io.vblk.nativetests.bench.JmhDefaults;
import java.io.File;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Submit+reap cost of the {@link LinuxAio} engine alone: 4 KiB preadv requests against a file on
 * tmpfs (/dev/shm, O_DIRECT when the kernel allows it), {@code depth} coroutines each issuing
 * requests back to back, so every loop iteration batches up to {@code depth} iocbs into one
 * io_submit and reaps them from the ring. Run with {@code -prof gc}: the engine itself allocates
 * nothing per request; what remains per op is the coroutine wake path of the block module.
 *
 * <pre>java -cp ... org.openjdk.jmh.Main AioSubmitReapBench -prof gc</pre>
 */
@State(Scope.Benchmark)
public class AioSubmitReapBench extends JmhDefaults {
    static final int OPS = 1024;
    static final int FILE_BLOCKS = 256;

    @Param({"1", "32"})
    public int depth;

    private AioContext ctx;
    private LinuxAio aio;
    private File file;
    private int fd = -1;
    private NativeBuffer buffers;
    private IoVector[] iovs;
    private FanOut fanOut;

    @Setup(Level.Trial)
    public void setup() throws Exception {
        File shm = new File("/dev/shm");
        file = File.createTempFile("vblk-bench", ".img", shm.isDirectory() ? shm : null);
        try (java.io.RandomAccessFile r = new java.io.RandomAccessFile(file, "rw")) {
            r.write(new byte[FILE_BLOCKS * 4096]);
        }
        fd = Native.LIBC.open(file.getPath(), Syscalls.O_RDWR | Syscalls.O_DIRECT | Syscalls.O_CLOEXEC, 0);
        if (fd < 0) {
            fd = Native.LIBC.open(file.getPath(), Syscalls.O_RDWR | Syscalls.O_CLOEXEC, 0);
        }
        if (fd < 0) {
            throw new IllegalStateException("open " + file + ": errno " + Native.errno());
        }
        ctx = IoThreads.start("bench-aio");
        LinuxAio[] e = new LinuxAio[1];
        ctx.runOnThread(() -> e[0] = LinuxAio.of(ctx));
        aio = e[0];
        buffers = NativeBuffer.allocate((long) depth * 4096, 4096);
        iovs = new IoVector[depth];
        for (int i = 0; i < depth; i++) {
            iovs[i] = IoVector.of(buffers.address() + 4096L * i, 4096);
        }
        int d = depth, f = fd;
        fanOut = new FanOut(ctx, depth, OPS,
                (w, k) -> aio.preadv(f, 4096L * ((w + (long) k * d) % FILE_BLOCKS), iovs[w], 0, 4096, 0));
    }

    @Benchmark
    @OperationsPerInvocation(OPS)
    public int submitReap() {
        return fanOut.run();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        System.out.println("\n" + aio);
        ctx.close();
        Native.LIBC.close(fd);
        buffers.close();
        file.delete();
    }
}
