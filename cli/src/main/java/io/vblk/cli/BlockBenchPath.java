package io.vblk.cli;

import io.vblk.aio.AioStats;
import io.vblk.aio.LinuxAio;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVector;

/** {@code --path block}: requests go through {@link BlockNode#preadv}/{@link BlockNode#pwritev}, the generic request path, as qemu-img bench's blk_aio_* do. */
final class BlockBenchPath implements BenchPath {
    private final OpenedImage img;
    private final BlockNode node;
    private final long length;
    private final AioStats stats;

    BlockBenchPath(OpenedImage img, boolean nativeAio) throws BlockException {
        this.img = img;
        this.node = img.node();
        long[] len = new long[1];
        AioStats[] st = new AioStats[1];
        img.ctx().run(() -> {
            len[0] = node.getLength();
            if (nativeAio) {
                st[0] = LinuxAio.of(img.ctx()).stats();
            }
            return 0;
        });
        if (len[0] < 0) {
            throw new BlockException((int) -len[0], "Could not get the image size");
        }
        this.length = len[0];
        this.stats = st[0];
    }

    @Override
    public io.vblk.block.AioContext context() {
        return img.ctx();
    }

    @Override
    public long length() {
        return length;
    }

    @Override
    public int request(boolean write, long offset, IoVector qiov) {
        int c = BackendRange.check(length, offset, qiov.size());
        if (c < 0) {
            return c;
        }
        return write ? node.pwritev(offset, qiov.size(), qiov, 0) : node.preadv(offset, qiov.size(), qiov, 0);
    }

    @Override
    public int flush() {
        return node.flush();
    }

    @Override
    public long bufferAlignment() {
        return Math.max(4096, node.limits().optMemAlignment);
    }

    @Override
    public AioStats aioStats() {
        return stats;
    }

    @Override
    public void close() {
        img.close();
    }
}
