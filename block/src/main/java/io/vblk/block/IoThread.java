package io.vblk.block;

/** The platform thread that runs one {@link AioContext}'s event loop. */
final class IoThread extends Thread {
    final AioContext ctx;
    Coroutine currentCoroutine; // this thread only

    IoThread(AioContext ctx, Runnable loop) {
        super(loop, ctx.name());
        this.ctx = ctx;
        setDaemon(true);
    }
}
