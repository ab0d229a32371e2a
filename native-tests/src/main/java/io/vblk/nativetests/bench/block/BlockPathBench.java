package io.vblk.nativetests.bench.block;

import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.cli.ImageOpener;
import io.vblk.nativetests.bench.FanOut;
import io.vblk.nativetests.bench.JmhDefaults;
import java.io.File;
import java.io.RandomAccessFile;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The generic request path of the block layer (issue 3): 4 KiB reads or writes through
 * {@link BlockNode#preadv}/{@link BlockNode#pwritev} from {@code depth} coroutines on one I/O
 * thread, over {@code null} (the layer alone) or over {@code file} with Linux AIO and O_DIRECT on
 * a 1 MiB file in /var/tmp (the layer plus the AIO engine, as {@code vblk bench --path block -f
 * file -t none -i native}). Run with
 * {@code -prof gc}: {@code gc.alloc.rate.norm} is the bytes allocated per request. Each invocation
 * spawns its workers anew, and the JDK allocates a stack chunk when a fresh worker first parks
 * (about 16 KB per invocation at depth 32); 32768 requests per invocation keep that under 1 B/op.
 *
 * <pre>java ... org.openjdk.jmh.Main BlockPathBench -prof gc</pre>
 */
@State(Scope.Benchmark)
public class BlockPathBench extends JmhDefaults {
    static final int OPS = 32768;   // per invocation; each invocation spawns the workers anew (see the class comment)
    static final int FILE_BLOCKS = 256;

    @Param({"null", "file"})
    public String driver;

    @Param({"1", "32"})
    public int depth;

    @Param({"read", "write"})
    public String op;

    private AioContext ctx;
    private BlockNode node;
    private File file;
    private NativeBuffer buffers;
    private FanOut fanOut;

    @Setup(Level.Trial)
    public void setup() throws Exception {
        BlockOptions opts;
        if (driver.equals("file")) {
            File tmp = new File("/var/tmp");
            file = File.createTempFile("vblk-bench", ".img", tmp.isDirectory() ? tmp : null);
            try (RandomAccessFile r = new RandomAccessFile(file, "rw")) {
                r.write(new byte[FILE_BLOCKS * 4096]);
            }
            opts = BlockOptions.parse("driver=file,filename=" + file.getPath() + ",aio=native,cache.direct=on");
        } else {
            opts = BlockOptions.parse("driver=null,size=" + FILE_BLOCKS * 4096);
        }
        ctx = ImageOpener.startContext("bench-block");
        node = ImageOpener.openOn(ctx, opts);
        boolean write = op.equals("write");
        buffers = NativeBuffer.allocate((long) depth * 4096, 4096);
        IoVector[] iovs = new IoVector[depth];
        for (int i = 0; i < depth; i++) {
            iovs[i] = IoVector.of(buffers.address() + 4096L * i, 4096);
        }
        BlockNode n = node;
        int d = depth;
        fanOut = new FanOut(ctx, depth, OPS, (w, k) -> {
            long off = 4096L * ((w + (long) k * d) % FILE_BLOCKS);
            return write ? n.pwritev(off, 4096, iovs[w], 0) : n.preadv(off, 4096, iovs[w], 0);
        });
    }

    @Benchmark
    @OperationsPerInvocation(OPS)
    public int requests() {
        return fanOut.run();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (node != null) {
            ctx.run(() -> {
                node.closeWithoutFlush();
                return 0;
            });
        }
        if (ctx != null) ctx.close();
        if (buffers != null) buffers.close();
        if (file != null && !file.delete()) file.deleteOnExit();
    }
}
