package io.vblk.block;

import jdk.internal.vm.Continuation;
import jdk.internal.vm.ContinuationScope;

/** The fast coroutine backend: one {@link Continuation} per pooled coroutine, run on the I/O thread. */
final class ContinuationBackend implements Coroutine.Backend {
    private static final ContinuationScope SCOPE = new ContinuationScope("vblk-coroutine");

    private final Coroutine co;
    private final Continuation cont;

    ContinuationBackend(Coroutine co) {
        this.co = co;
        this.cont = new Continuation(SCOPE, co::runLoop);
    }

    @Override
    public void enter() {
        Coroutine outer = Backends.current();
        Backends.setCurrent(co);
        try {
            cont.run();
        } finally {
            Backends.setCurrent(outer);
        }
    }

    @Override
    public void yieldToCaller() {
        if (!Continuation.yield(SCOPE)) {
            throw new IllegalStateException("coroutine could not yield (pinned by a monitor or native frame)");
        }
    }
}
