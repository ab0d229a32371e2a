package io.vblk.virtio.memory;

import io.vblk.aio.Native;
import io.vblk.block.IoVector;
import io.vblk.block.NativeMemory;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;

/** Regions, bounds-checked translation, region-crossing buffers, vhost-user style fd regions. */
class GuestMemoryTest {
    @Test
    void translateIsBoundsChecked() throws Exception {
        try (GuestMemory m = GuestMemory.anonymous(1 << 20)) {
            assertNotEquals(-1, m.translate(0, 1 << 20));
            assertEquals(-1, m.translate(1, 1 << 20), "one byte past the end");
            assertEquals(-1, m.translate(1 << 20, 1));
            assertEquals(-1, m.translate(-1, 1));
            assertEquals(-1, m.translate(Long.MAX_VALUE, 2));
            assertEquals(-1, m.translate(0, -1));
            assertEquals(m.translate(0, 1) + 4096, m.translate(4096, 8));
            IoVector v = new IoVector();
            assertFalse(m.appendTo(v, (1 << 20) - 10, 20));
        }
    }

    @Test
    void bufferCrossingRegionsBecomesSlicesAndGapsFail() throws Exception {
        try (Arena a = Arena.ofConfined(); GuestMemory m = new GuestMemory()) {
            MemorySegment s1 = a.allocate(8192, 4096), s2 = a.allocate(8192, 4096);
            m.addSegment(0x10000, s1);
            m.addSegment(0x12000, s2);
            IoVector v = new IoVector();
            assertTrue(m.appendTo(v, 0x11000, 8192));
            assertEquals(2, v.count());
            assertEquals(s1.address() + 4096, v.address(0));
            assertEquals(4096, v.length(0));
            assertEquals(s2.address(), v.address(1));
            v.reset();
            assertFalse(m.appendTo(v, 0x13000, 8192), "runs into the hole after region 2");
            assertEquals(-1, m.translate(0x11000, 8192), "translate wants one region");
            assertThrows(IllegalArgumentException.class, () -> m.addSegment(0x11000, s2), "overlap");
            assertTrue(m.remove(0x12000));
            assertNull(m.find(0x12000));
        }
    }

    @Test
    void fdRegionWithFrontEndAddresses() throws Exception {
        int fd = (int) Native.check(Native.LIBC.memfd_create("test", 1), "memfd_create");
        try (GuestMemory m = new GuestMemory()) {
            Native.check(Native.LIBC.ftruncate(fd, 2 << 20), "ftruncate");
            long user = 0x7f00_0000_0000L;
            GuestRegion r = m.addFd(fd, 1 << 20, 0x4000_0000L, 1 << 20, user); // second MiB of the file
            assertEquals(0x4000_0000L + 0x123, m.userToGpa(user + 0x123));
            assertEquals(-1, m.userToGpa(user + (1 << 20)));
            assertEquals(r.host() + 16, m.translateUser(user + 16, 64));
            assertEquals(-1, m.translateUser(user + (1 << 20) - 8, 64));
            // the mapping is shared: a second mapping of the same fd offset sees the write
            NativeMemory.putLongLE(m.translate(0x4000_0000L, 8), 0x1122334455667788L);
            try (GuestMemory m2 = new GuestMemory()) {
                m2.addFd(fd, 1 << 20, 0, 1 << 20, -1);
                assertEquals(0x1122334455667788L, NativeMemory.getLongLE(m2.translate(0, 8)));
            }
        } finally {
            Native.LIBC.close(fd);
        }
    }

    @Test
    void memfdBackedMemory() throws Exception {
        try (GuestMemory m = GuestMemory.memfd(4 << 20)) {
            assertEquals(4 << 20, m.totalSize());
            long h = m.translate((4 << 20) - 8, 8);
            NativeMemory.putLongLE(h, 42);
            assertEquals(42, NativeMemory.getLongLE(h));
        }
    }
}
