package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * The fixed-signature syscall stubs deliver every argument to the kernel. The fifth and sixth are
 * the ones at risk (a five-argument stub lost its last one): io_getevents only honours its timeout,
 * the fifth argument, if the kernel sees it.
 */
class HotSyscallsTest {
    @Test
    void ioGeteventsSeesItsTimeoutTheFifthArgument() {
        try (NativeBuffer ctxp = NativeBuffer.allocate(8, 8);
             NativeBuffer events = NativeBuffer.allocate(8 * 32, 16);
             NativeBuffer ts = NativeBuffer.allocate(16, 8)) {
            NativeMemory.putLongLE(ctxp.address(), 0);
            assertEquals(0, Native.ret(Native.LIBC.syscall(Syscalls.IO_SETUP, 8, ctxp.address())), "io_setup");
            long ctx = NativeMemory.getLongLE(ctxp.address());
            try {
                NativeMemory.putLongLE(ts.address(), 0);
                NativeMemory.putLongLE(ts.address() + 8, 50_000_000L); // 50 ms
                // nothing was submitted: with min_nr=1 only the timeout ends the wait
                long t0 = System.nanoTime();
                long n = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> Native.ret(
                        HotSyscalls.INSTANCE.syscall(Syscalls.IO_GETEVENTS, ctx, 1, 8, events.address(), ts.address(), 0)),
                        "io_getevents ignored its timeout");
                long waited = System.nanoTime() - t0;
                assertEquals(0, n, "no events, timed out");
                assertTrue(waited >= 50_000_000L, "waited the timeout: " + waited + " ns");
            } finally {
                Native.LIBC.syscall(Syscalls.IO_DESTROY, ctx);
            }
        }
    }
}
