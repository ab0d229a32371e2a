package io.vblk.cli;

import io.vblk.aio.AioStats;
import io.vblk.aio.LinuxAio;
import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.Coroutine;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.virtio.blk.VirtioBlkConfig;
import io.vblk.virtio.blk.VirtioBlkDevice;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.driver.GuestQueue;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.GuestRegion;

import static io.vblk.virtio.VirtioSpec.*;

/**
 * {@code vblk bench --path virtio}: every request goes guest driver -> split virtqueue -> virtio-blk
 * device -> block layer, on the bench's I/O thread. Guest memory maps guest-physical addresses
 * one to one onto host addresses: the rings live in one region and the request buffers, which
 * the bench takes from {@link #requestBuffers}, in another, so no byte is copied (a buffer outside
 * guest RAM fails with EFAULT). The runner uses {@link #start}: the guest side adds a chain and
 * kicks (suppressed while the device is already processing, EVENT_IDX) and returns, and the
 * queue's interrupt reaps the used ring and calls each request's completion, which starts the
 * next one, as a guest's interrupt handler and fio's completion loop do. Requests started from
 * the interrupt handler share one kick at its end, as Linux's blk-mq commits a batch of
 * virtio-blk requests with one notification. Flushes
 * ({@code --flush-interval}) go through {@link #request}: a coroutine that parks until the
 * interrupt wakes it. Nothing is allocated per request.
 */
public final class VirtioBenchPath implements BenchPath {
    private static final int QUEUE_SIZE = 1024;

    private final AioContext ctx;
    private final BlockNode node;
    private final GuestMemory mem;
    private final NativeBuffer arena;
    private NativeBuffer data;        // request buffers in guest RAM (requestBuffers), freed at close
    private GuestRegion dataRegion;   // data's region: its buffers need no region lookup (segments)
    private final VirtioBlkDevice dev;
    private final GuestQueue q;
    private final long length;
    private final AioStats stats;
    // context thread only
    private final Coroutine[] waiter = new Coroutine[QUEUE_SIZE];
    private final Completion[] callback = new Completion[QUEUE_SIZE];
    private final int[] status = new int[QUEUE_SIZE];
    private final long[] segGpa = new long[GuestQueue.MAX_SEGMENTS];
    private final int[] segLen = new int[GuestQueue.MAX_SEGMENTS];
    private boolean inInterrupt;  // onInterrupt is running: requests it starts share one kick at its end

    private VirtioBenchPath(AioContext ctx, BlockNode node, boolean nativeAio) throws BlockException {
        this.ctx = ctx;
        this.node = node;
        this.mem = new GuestMemory();
        this.arena = NativeBuffer.allocate(4L << 20, 4096);
        mem.addSegment(arena.address(), arena.segment());
        VirtioBlkConfig cfg = new VirtioBlkConfig().serial("vblk-bench");
        cfg.queueSize = QUEUE_SIZE;
        this.dev = new VirtioBlkDevice(node, cfg, new AioContext[] {ctx});
        GuestDriver drv = new GuestDriver(dev, mem, arena.address(), arena.size()).wireInterrupts(false);
        drv.initialize(QUEUE_SIZE);
        this.q = drv.queue(0);
        dev.setNotifier(0, this::onInterrupt);
        long[] len = new long[1];
        AioStats[] st = new AioStats[1];
        ctx.run(() -> {
            len[0] = node.getLength();
            if (nativeAio) st[0] = LinuxAio.of(ctx).stats();
            return 0;
        });
        if (len[0] < 0) throw new BlockException((int) -len[0], "Could not get the image size");
        this.length = len[0];
        this.stats = st[0];
    }

    /** Called by BenchCommand through reflection. */
    public static BenchPath open(ImageSpec spec, AioContext ctx) throws BlockException, CliException {
        BlockNode node = ImageOpener.openOn(ctx, ImageOpener.toBlockOptions(spec));
        try {
            return new VirtioBenchPath(ctx, node, "native".equals(spec.aio));
        } catch (BlockException | RuntimeException e) {
            ctx.run(node::close);
            throw e;
        }
    }

    @Override public AioContext context() { return ctx; }
    @Override public long length() { return length; }
    @Override public AioStats aioStats() { return stats; }
    @Override public long bufferAlignment() { return Math.max(4096, node.limits().optMemAlignment); }

    /**
     * The request buffers live in one more guest RAM region (identity-mapped), as a guest's data
     * pages are in its RAM: translating them is then a lookup among two regions, not one region
     * per buffer.
     */
    @Override
    public long[] requestBuffers(int count, long size) {
        long align = bufferAlignment();
        long stride = (size + align - 1) / align * align;
        NativeBuffer b = NativeBuffer.allocate(stride * count, align);
        data = b;
        dataRegion = mem.addSegment(b.address(), b.segment());
        long[] out = new long[count];
        for (int i = 0; i < count; i++) out[i] = b.address() + stride * i;
        return out;
    }

    @Override
    public int request(boolean write, long offset, IoVector qiov) {
        int n = segments(offset, qiov);
        if (n < 0) return n;
        return submitAndWait(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, offset >> VIRTIO_BLK_SECTOR_BITS, n);
    }

    @Override
    public boolean canStart() {
        return true;
    }

    /**
     * Adds the chain and kicks; the interrupt calls {@code done}. Fails with EAGAIN when the ring
     * has no free descriptors (the runner keeps no more requests in flight than the ring holds).
     */
    @Override
    public int start(boolean write, long offset, IoVector qiov, Completion done) {
        int n = segments(offset, qiov);
        if (n < 0) return n;
        int head = q.submit(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, offset >> VIRTIO_BLK_SECTOR_BITS,
                segGpa, segLen, n, Layout.DIRECT);
        if (head < 0) return -Errno.EAGAIN;
        callback[head] = done;
        if (!inInterrupt) {
            q.kick(); // from the handler: one kick at its end for all it added (blk-mq's commit_rqs)
        }
        return 0;
    }

    /** Checks the range and fills segGpa/segLen from {@code qiov}; the segment count or a negative errno. */
    private int segments(long offset, IoVector qiov) {
        int c = BackendRange.check(length, offset, qiov.size());
        if (c < 0) return c;
        int n = qiov.count();
        if (n > GuestQueue.MAX_SEGMENTS) return -Errno.EINVAL;
        GuestRegion d = dataRegion;
        for (int i = 0; i < n; i++) {
            long a = qiov.address(i), len = qiov.length(i);
            // a guest knows its buffers are RAM; the bench checks it, cheaply for its own buffers
            if ((d == null || !d.containsGpa(a, len)) && mem.translate(a, len) == -1) return -Errno.EFAULT;
            segGpa[i] = a;
            segLen[i] = (int) len;
        }
        return n;
    }

    private static int toErrno(int status) {
        return switch (status) {
            case VIRTIO_BLK_S_OK -> 0;
            case VIRTIO_BLK_S_UNSUPP -> -Errno.ENOTSUP;
            default -> -Errno.EIO;
        };
    }

    @Override
    public int flush() {
        return submitAndWait(VIRTIO_BLK_T_FLUSH, 0, 0);
    }

    private int submitAndWait(int type, long sector, int nseg) {
        int head;
        while ((head = q.submit(type, sector, segGpa, segLen, nseg, Layout.DIRECT)) < 0) {
            Coroutine.yieldNow(); // out of descriptors: let completions free some
        }
        Coroutine me = Coroutine.current();
        waiter[head] = me;
        status[head] = -1;
        q.kick();
        while (status[head] < 0) Coroutine.park();
        return toErrno(status[head]);
    }

    /** The queue's used-buffer interrupt, on the I/O thread: reap, then wake or call back. */
    private void onInterrupt() {
        inInterrupt = true;
        try {
            reapUsed();
        } finally {
            inInterrupt = false;
            q.kick(); // decides from avail.idx itself: no kick when the handler added nothing
        }
    }

    private void reapUsed() {
        while (q.pollUsed()) {
            int head = q.lastHead();
            if (head < 0 || head >= QUEUE_SIZE) continue;
            Completion cb = callback[head];
            if (cb != null) {
                callback[head] = null;
                cb.done(toErrno(q.status(head))); // may start the next request: its descriptors are free
                continue;
            }
            if (waiter[head] == null) continue;
            status[head] = q.status(head);
            Coroutine co = waiter[head];
            waiter[head] = null;
            co.wake();
        }
    }

    @Override
    public void close() {
        try {
            dev.reset();
            ctx.run(node::close);
        } finally {
            ctx.close();
            mem.close();
            arena.close();
            if (data != null) data.close();
        }
    }
}
