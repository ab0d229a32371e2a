package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.Errno;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import org.junit.jupiter.api.Test;

class NativeSmokeTest {
    @Test
    void eventfdCountsWrites() {
        int fd = (int) Native.ret(Native.LIBC.syscall(Syscalls.EVENTFD2, 0, 0x80000 | 0x800));
        assertTrue(fd >= 0, "eventfd2: " + Errno.name(fd));
        try (NativeBuffer b = NativeBuffer.allocate(8, 8)) {
            NativeMemory.putLongLE(b.address(), 3);
            assertEquals(8, Native.LIBC.write(fd, b.address(), 8));
            NativeMemory.putLongLE(b.address(), 0);
            assertEquals(8, Native.LIBC.read(fd, b.address(), 8));
            assertEquals(3, NativeMemory.getLongLE(b.address()));
            // non-blocking read of a zero counter: EAGAIN, and its name reaches us
            assertEquals(-Errno.EAGAIN, Native.ret(Native.LIBC.read(fd, b.address(), 8)));
        } finally {
            Native.LIBC.close(fd);
        }
    }
}
