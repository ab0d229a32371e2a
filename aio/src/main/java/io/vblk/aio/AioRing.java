package io.vblk.aio;

import io.vblk.block.NativeMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * The kernel's AIO completion ring, read from user space (QEMU's io_getevents_peek/commit, libaio's
 * fast path). The {@code aio_context_t} that io_setup returns is the address of this mapping:
 * a 32-byte header of eight u32 ({@code id, nr, head, tail, magic, compat, incompat, header_length})
 * followed by {@code nr} 32-byte io_events. The consumer loads {@code tail} with acquire
 * ordering, copies events from {@code head}, and publishes the new {@code head} with a release
 * store. The modulus is always the ring's own {@code nr}, never the io_setup depth.
 *
 * <p>One consumer only: the owning {@link LinuxAio}'s context thread.
 */
public final class AioRing {
    static final int NR = 4;
    static final int HEAD = 8;
    static final int TAIL = 12;
    static final int MAGIC = 16;
    static final int INCOMPAT = 24;
    static final int HEADER_LENGTH = 32;

    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();
    private static final MemorySegment ALL = NativeMemory.ALL;

    private final long base;
    private final int nr;
    private final boolean usable;

    public AioRing(long ctxId) {
        this.base = ctxId;
        boolean ok = ctxId != 0
                && NativeMemory.getIntLE(ctxId + MAGIC) == LinuxConstants.AIO_RING_MAGIC
                && NativeMemory.getIntLE(ctxId + INCOMPAT) == 0;
        this.nr = ok ? NativeMemory.getIntLE(ctxId + NR) : 0;
        this.usable = ok && nr > 0;
    }

    /** True if the header checks passed and events may be reaped without a syscall. */
    public boolean usable() {
        return usable;
    }

    public int nr() {
        return nr;
    }

    /**
     * Number of events readable contiguously from {@link #head()}: up to the tail, or up to the end
     * of the ring when the tail has wrapped (the caller loops). -1 if the header looks corrupt
     * (head or tail out of range), in which case the caller uses io_getevents.
     */
    public int peek() {
        int tail = (int) INT.getAcquire(ALL, base + TAIL);
        int head = (int) INT.getAcquire(ALL, base + HEAD);
        if (head < 0 || head >= nr || tail < 0 || tail >= nr) {
            return -1;
        }
        return tail >= head ? tail - head : nr - head;
    }

    public int head() {
        return (int) INT.getAcquire(ALL, base + HEAD);
    }

    /** Address of the event in slot {@code index} (0 <= index < nr). */
    public long event(int index) {
        return base + HEADER_LENGTH + (long) index * Iocb.EVENT_SIZE;
    }

    /** Releases {@code n} consumed events to the kernel: head = (head + n) mod nr, with release ordering. */
    public void commit(int n) {
        int head = (int) INT.getAcquire(ALL, base + HEAD);
        INT.setRelease(ALL, base + HEAD, (head + n) % nr);
    }
}
