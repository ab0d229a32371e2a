package io.vblk.cli;

import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;

/**
 * An open image for a command: the top {@link BlockNode} of its graph and the I/O thread its
 * requests run on. Closing flushes and closes the graph on that thread (bdrv_close, which drains
 * first), then stops the thread; its result is 0 or the negative errno of the final flush.
 */
public record OpenedImage(BlockNode node, AioContext ctx, String description) implements AutoCloseable {
    @Override
    public void close() {
        closeAndReport();
    }

    /** Closes and returns 0 or a negative errno (a failed final flush). */
    public int closeAndReport() {
        int r = 0;
        try {
            if (!node.isClosed()) {
                r = ctx.run(node::close);
            }
        } finally {
            ctx.close();
        }
        return r;
    }
}
